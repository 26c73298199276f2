using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using AgentMetadata = FirecrackerContainerd.Protos.Agent.AgentMetadata;
using AgentVersion = FirecrackerContainerd.Protos.Agent.AgentVersion;
using EnsurePodVolumeRequest = FirecrackerContainerd.Protos.Agent.EnsurePodVolumeRequest;
using MountDriveRequest = FirecrackerContainerd.Protos.Agent.MountDriveRequest;
using MountOverlayRequest = FirecrackerContainerd.Protos.Agent.MountOverlayRequest;
using PreparePodRequest = FirecrackerContainerd.Protos.Agent.PreparePodRequest;
using PutPodFileRequest = FirecrackerContainerd.Protos.Agent.PutPodFileRequest;
using SetPodNetworkSysctlsRequest = FirecrackerContainerd.Protos.Agent.SetPodNetworkSysctlsRequest;
using UnmountDriveRequest = FirecrackerContainerd.Protos.Agent.UnmountDriveRequest;
using UnmountOverlayRequest = FirecrackerContainerd.Protos.Agent.UnmountOverlayRequest;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>
/// The host's view of the guest agent: typed calls over ttrpc, and every answer checked before use,
/// because the guest is not trusted. A call cut off by the connection closing fails with what
/// <paramref name="explainLoss"/> knows about why (the VM's state, the guest's last words), not a bare "closed".
/// </summary>
internal sealed class AgentClient(TtrpcClient client, Func<Task<string>>? explainLoss = null) : IGuestAgent
{
    private const string TaskService = ServiceNames.TaskV2;

    /// <summary>The largest pid Linux can hand out (PID_MAX_LIMIT on 64-bit).</summary>
    private const uint MaxPid = 4 * 1024 * 1024;

    private volatile bool _disposed;

    public Task Completion => client.Completion;

    public async Task<AgentVersion> VersionAsync(CancellationToken cancellationToken) =>
        await Invoke(ServiceNames.Agent, "Version", new Empty(), AgentVersion.Parser, cancellationToken).ConfigureAwait(false);

    /// <summary>Installs the VM's metadata document in the guest, where every container can read it.</summary>
    public Task SetMetadataAsync(string json, CancellationToken cancellationToken) =>
        Invoke(ServiceNames.Agent, "SetMetadata", new AgentMetadata { Json = json }, Empty.Parser, cancellationToken);

    public Task MountDriveAsync(string driveId, string destination, CancellationToken cancellationToken) =>
        MountDriveAsync(driveId, destination, "ext4", [], cancellationToken);

    /// <summary>Has the agent mount stub drive <paramref name="driveId"/> (patched by now) at <paramref name="destination"/>, creating it.</summary>
    public Task MountDriveAsync(string driveId, string destination, string filesystemType, IEnumerable<string> options, CancellationToken cancellationToken) =>
        Invoke(ServiceNames.DriveMounter, "MountDrive",
            new MountDriveRequest { DriveID = driveId, DestinationPath = destination, FilesytemType = filesystemType, Options = { options } }, Empty.Parser,
            cancellationToken);

    public Task UnmountDriveAsync(string driveId, CancellationToken cancellationToken) =>
        Invoke(ServiceNames.DriveMounter, "UnmountDrive", new UnmountDriveRequest { DriveID = driveId }, Empty.Parser, cancellationToken);

    public Task MountOverlayAsync(string destination, IEnumerable<string> lowerDriveIds, uint upperSizeMib, CancellationToken cancellationToken) =>
        Invoke(ServiceNames.DriveMounter, "MountOverlay",
            new MountOverlayRequest { DestinationPath = destination, LowerDriveIDs = { lowerDriveIds }, UpperSizeMib = upperSizeMib }, Empty.Parser, cancellationToken);

    public Task UnmountOverlayAsync(string destination, CancellationToken cancellationToken) =>
        Invoke(ServiceNames.DriveMounter, "UnmountOverlay", new UnmountOverlayRequest { DestinationPath = destination }, Empty.Parser, cancellationToken);

    public Task PreparePodAsync(string sandboxId, CancellationToken cancellationToken) =>
        Invoke(ServiceNames.Pod, "PreparePod", new PreparePodRequest { SandboxId = sandboxId }, Empty.Parser, cancellationToken);

    public Task PutPodFileAsync(string sandboxId, string name, ReadOnlyMemory<byte> content, UnixFileMode mode, CancellationToken cancellationToken) =>
        Invoke(ServiceNames.Pod, "PutFile", new PutPodFileRequest { SandboxId = sandboxId, Name = name, Content = ByteString.CopyFrom(content.Span), Mode = (uint)mode }, Empty.Parser,
            cancellationToken);

    public Task EnsurePodVolumeAsync(string sandboxId, string name, CancellationToken cancellationToken) =>
        Invoke(ServiceNames.Pod, "EnsureVolume", new EnsurePodVolumeRequest { SandboxId = sandboxId, Name = name }, Empty.Parser, cancellationToken);

    public Task SetPodNetworkSysctlsAsync(string sandboxId, IReadOnlyDictionary<string, string> sysctls, CancellationToken cancellationToken) =>
        Invoke(ServiceNames.Pod, "SetNetworkSysctls", new SetPodNetworkSysctlsRequest { SandboxId = sandboxId, Sysctls = { sysctls.ToDictionary() } }, Empty.Parser, cancellationToken);

    public async Task<Envelope> NextEventAsync(CancellationToken cancellationToken)
    {
        Envelope envelope = await Invoke(ServiceNames.EventBridge, "GetEvent", new Empty(), Envelope.Parser, cancellationToken)
            .ConfigureAwait(false);
        if (!envelope.Topic.StartsWith("/tasks/", StringComparison.Ordinal) || envelope.Topic.Length > 64 || envelope.Event is null
            || !envelope.Event.TypeUrl.StartsWith("containerd.events.Task", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"the agent sent an event that is not a task event: topic \"{Truncate(envelope.Topic)}\"");
        }

        return envelope;
    }

    public async Task<uint> CreateAsync(CreateTaskRequest request, CancellationToken cancellationToken) =>
        CheckPid((await Call("Create", request, CreateTaskResponse.Parser, cancellationToken).ConfigureAwait(false)).Pid, "Create");

    public async Task<uint> StartAsync(StartRequest request, CancellationToken cancellationToken) =>
        CheckPid((await Call("Start", request, StartResponse.Parser, cancellationToken).ConfigureAwait(false)).Pid, "Start");

    public async Task<DeleteResponse> DeleteAsync(DeleteRequest request, CancellationToken cancellationToken)
    {
        DeleteResponse deleted = await Call("Delete", request, DeleteResponse.Parser, cancellationToken).ConfigureAwait(false);
        return deleted.ExitStatus <= 255 && deleted.Pid <= MaxPid
            ? deleted
            : throw new InvalidDataException($"the agent answered Delete of {request.Id} with an impossible exit");
    }

    public async Task<PidsResponse> PidsAsync(PidsRequest request, CancellationToken cancellationToken)
    {
        PidsResponse pids = await Call("Pids", request, PidsResponse.Parser, cancellationToken).ConfigureAwait(false);
        return pids.Processes.Count <= 65536 && pids.Processes.All(p => p.Pid is > 0 and <= MaxPid)
            ? pids
            : throw new InvalidDataException($"the agent answered Pids of {request.Id} with impossible pids");
    }

    public Task KillAsync(KillRequest request, CancellationToken cancellationToken) => Call("Kill", request, Empty.Parser, cancellationToken);

    public Task ExecAsync(ExecProcessRequest request, CancellationToken cancellationToken) => Call("Exec", request, Empty.Parser, cancellationToken);

    public Task PauseAsync(PauseRequest request, CancellationToken cancellationToken) => Call("Pause", request, Empty.Parser, cancellationToken);

    public Task ResumeAsync(ResumeRequest request, CancellationToken cancellationToken) => Call("Resume", request, Empty.Parser, cancellationToken);

    public Task CloseIOAsync(CloseIORequest request, CancellationToken cancellationToken) => Call("CloseIO", request, Empty.Parser, cancellationToken);

    public Task UpdateAsync(UpdateTaskRequest request, CancellationToken cancellationToken) => Call("Update", request, Empty.Parser, cancellationToken);

    public Task ResizePtyAsync(ResizePtyRequest request, CancellationToken cancellationToken) => Call("ResizePty", request, Empty.Parser, cancellationToken);

    public Task<StatsResponse> StatsAsync(StatsRequest request, CancellationToken cancellationToken) => Call("Stats", request, StatsResponse.Parser, cancellationToken);

    public ValueTask DisposeAsync()
    {
        // Calls this cuts off are the shim's own doing: they fail as closed, with nothing to explain.
        _disposed = true;
        return client.DisposeAsync();
    }

    private Task<T> Call<T>(string method, IMessage request, MessageParser<T> parser, CancellationToken cancellationToken)
        where T : IMessage<T> =>
        Invoke(TaskService, method, request, parser, cancellationToken);

    private async Task<T> Invoke<T>(string service, string method, IMessage request, MessageParser<T> parser, CancellationToken cancellationToken)
        where T : IMessage<T>
    {
        try
        {
            return await client.CallAsync(service, method, request, parser, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (TtrpcException e) when (e.StatusCode == StatusCode.Unavailable && client.IsClosed && !_disposed)
        {
            string why = explainLoss is null ? "" : await explainLoss().ConfigureAwait(false);
            throw new TtrpcException(StatusCode.Unavailable, $"{method}: the connection to the VM's agent closed{why}", e);
        }
    }

    private static uint CheckPid(uint pid, string call) =>
        pid is > 0 and <= MaxPid ? pid : throw new TtrpcException(StatusCode.Internal, $"the agent answered {call} with pid {pid}");

    private static string Truncate(string text) => text.Length <= 64 ? text : text[..64] + "...";
}
