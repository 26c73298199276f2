using System.Collections.Concurrent;
using System.Threading.Channels;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using AgentVersion = FirecrackerContainerd.Protos.Agent.AgentVersion;

namespace FirecrackerContainerd.Runtime.Tests.Fakes;

/// <summary>
/// A guest agent that records every call as one line ("Create c1", "MountDrive stub0 /container/c1/rootfs") and answers
/// at once: pids count up from 100; its events are the ones the test sends.
/// </summary>
internal sealed class FakeAgent : IGuestAgent
{
    private readonly Channel<Envelope> _events = Channel.CreateUnbounded<Envelope>();
    private int _nextPid = 100;

    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>When set, Create fails with it.</summary>
    public Exception? CreateFailure { get; set; }

    /// <summary>Has the guest report <paramref name="taskEvent"/> under <paramref name="topic"/>.</summary>
    public void Send(string topic, IMessage taskEvent) =>
        _events.Writer.TryWrite(new Envelope
        {
            Topic = topic,
            Namespace = "guest",
            Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
            Event = new Any { TypeUrl = taskEvent.Descriptor.FullName, Value = taskEvent.ToByteString() },
        });

    public Task<AgentVersion> VersionAsync(CancellationToken cancellationToken) => Task.FromResult(new AgentVersion());

    public Task SetMetadataAsync(string json, CancellationToken cancellationToken) => Record($"SetMetadata {json}");

    public Task MountDriveAsync(string driveId, string destination, string filesystemType, IEnumerable<string> options, CancellationToken cancellationToken) =>
        Record($"MountDrive {driveId} {destination} {filesystemType}");

    public Task UnmountDriveAsync(string driveId, CancellationToken cancellationToken) => Record($"UnmountDrive {driveId}");

    public Task MountOverlayAsync(string destination, IEnumerable<string> lowerDriveIds, uint upperSizeMib, CancellationToken cancellationToken) =>
        Record($"MountOverlay {destination} {string.Join(':', lowerDriveIds)} {upperSizeMib}");

    public Task UnmountOverlayAsync(string destination, CancellationToken cancellationToken) => Record($"UnmountOverlay {destination}");

    /// <summary>The files put into the guest, by name.</summary>
    public ConcurrentDictionary<string, byte[]> PodFiles { get; } = new();

    public Task PreparePodAsync(string sandboxId, CancellationToken cancellationToken) => Record($"PreparePod {sandboxId}");

    public Task PutPodFileAsync(string sandboxId, string name, ReadOnlyMemory<byte> content, UnixFileMode mode, CancellationToken cancellationToken)
    {
        PodFiles[name] = content.ToArray();
        return Record($"PutPodFile {sandboxId} {name}");
    }

    public Task EnsurePodVolumeAsync(string sandboxId, string name, CancellationToken cancellationToken) => Record($"EnsurePodVolume {sandboxId} {name}");

    public Task SetPodNetworkSysctlsAsync(string sandboxId, IReadOnlyDictionary<string, string> sysctls, CancellationToken cancellationToken) =>
        Record($"SetPodNetworkSysctls {sandboxId} {string.Join(',', sysctls.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key}={s.Value}"))}");

    public async Task<Envelope> NextEventAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _events.Reader.ReadAsync(cancellationToken);
        }
        catch (ChannelClosedException e)
        {
            throw new TtrpcException(StatusCode.Unavailable, "ttrpc: closed", e);
        }
    }

    /// <summary>The OCI spec each Create carried, by task id.</summary>
    public ConcurrentDictionary<string, string> Specs { get; } = new();

    public async Task<uint> CreateAsync(CreateTaskRequest request, CancellationToken cancellationToken)
    {
        Specs[request.Id] = request.Options.Unpack<ExtraData>().JsonSpec.ToStringUtf8();
        await Record($"Create {request.Id}");
        return CreateFailure is { } failure ? throw failure : NextPid();
    }

    public async Task<uint> StartAsync(StartRequest request, CancellationToken cancellationToken)
    {
        await Record($"Start {request.Id}/{request.ExecId}");
        return NextPid();
    }

    public async Task<DeleteResponse> DeleteAsync(DeleteRequest request, CancellationToken cancellationToken)
    {
        await Record($"Delete {request.Id}/{request.ExecId}");
        return new DeleteResponse { ExitStatus = 0 };
    }

    public async Task<PidsResponse> PidsAsync(PidsRequest request, CancellationToken cancellationToken)
    {
        await Record($"Pids {request.Id}");
        return new PidsResponse();
    }

    public Task KillAsync(KillRequest request, CancellationToken cancellationToken) => Record($"Kill {request.Id}/{request.ExecId} {request.Signal}");

    public Task ExecAsync(ExecProcessRequest request, CancellationToken cancellationToken) => Record($"Exec {request.Id}/{request.ExecId}");

    public Task PauseAsync(PauseRequest request, CancellationToken cancellationToken) => Record($"Pause {request.Id}");

    public Task ResumeAsync(ResumeRequest request, CancellationToken cancellationToken) => Record($"Resume {request.Id}");

    public Task CloseIOAsync(CloseIORequest request, CancellationToken cancellationToken) => Record($"CloseIO {request.Id}/{request.ExecId}");

    public Task UpdateAsync(UpdateTaskRequest request, CancellationToken cancellationToken) => Record($"Update {request.Id}");

    public Task ResizePtyAsync(ResizePtyRequest request, CancellationToken cancellationToken) => Record($"ResizePty {request.Id}/{request.ExecId}");

    public async Task<StatsResponse> StatsAsync(StatsRequest request, CancellationToken cancellationToken)
    {
        await Record($"Stats {request.Id}");
        return new StatsResponse();
    }

    public ValueTask DisposeAsync()
    {
        _events.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }

    private uint NextPid() => (uint)Interlocked.Increment(ref _nextPid);

    private Task Record(string call)
    {
        Calls.Enqueue(call);
        return Task.CompletedTask;
    }
}
