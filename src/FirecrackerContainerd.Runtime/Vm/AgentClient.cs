using FirecrackerContainerd.Core;
using AgentMetadata = FirecrackerContainerd.Protos.Agent.AgentMetadata;
using AgentVersion = FirecrackerContainerd.Protos.Agent.AgentVersion;
using MountDriveRequest = FirecrackerContainerd.Protos.Agent.MountDriveRequest;
using UnmountDriveRequest = FirecrackerContainerd.Protos.Agent.UnmountDriveRequest;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>
/// The host's view of the guest agent: typed calls over ttrpc, and every answer checked before use,
/// because the guest is not trusted.
/// </summary>
internal sealed class AgentClient(TtrpcClient client) : IAsyncDisposable
{
    private const string TaskService = "containerd.task.v2.Task";

    /// <summary>The largest pid Linux can hand out (PID_MAX_LIMIT on 64-bit).</summary>
    private const uint MaxPid = 4 * 1024 * 1024;

    public Task Completion => client.Completion;

    public async Task<AgentVersion> VersionAsync(CancellationToken cancellationToken) =>
        await client.CallAsync("Agent", "Version", new Empty(), AgentVersion.Parser, cancellationToken: cancellationToken).ConfigureAwait(false);

    /// <summary>Installs the VM's metadata document in the guest, where every container can read it.</summary>
    public Task SetMetadataAsync(string json, CancellationToken cancellationToken) =>
        client.CallAsync("Agent", "SetMetadata", new AgentMetadata { Json = json }, Empty.Parser, cancellationToken: cancellationToken);

    public Task MountDriveAsync(string driveId, string destination, CancellationToken cancellationToken) =>
        MountDriveAsync(driveId, destination, "ext4", [], cancellationToken);

    /// <summary>Has the agent mount stub drive <paramref name="driveId"/> (patched by now) at <paramref name="destination"/>, creating it.</summary>
    public Task MountDriveAsync(string driveId, string destination, string filesystemType, IEnumerable<string> options, CancellationToken cancellationToken) =>
        client.CallAsync("DriveMounter", "MountDrive",
            new MountDriveRequest { DriveID = driveId, DestinationPath = destination, FilesytemType = filesystemType, Options = { options } }, Empty.Parser,
            cancellationToken: cancellationToken);

    public Task UnmountDriveAsync(string driveId, CancellationToken cancellationToken) =>
        client.CallAsync("DriveMounter", "UnmountDrive", new UnmountDriveRequest { DriveID = driveId }, Empty.Parser, cancellationToken: cancellationToken);

    public async Task<Envelope> NextEventAsync(CancellationToken cancellationToken)
    {
        Envelope envelope = await client.CallAsync("aws.firecracker.containerd.eventbridge.getter", "GetEvent", new Empty(), Envelope.Parser,
            cancellationToken: cancellationToken).ConfigureAwait(false);
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

    public ValueTask DisposeAsync() => client.DisposeAsync();

    private Task<T> Call<T>(string method, IMessage request, MessageParser<T> parser, CancellationToken cancellationToken)
        where T : IMessage<T> =>
        client.CallAsync(TaskService, method, request, parser, cancellationToken: cancellationToken);

    private static uint CheckPid(uint pid, string call) =>
        pid is > 0 and <= MaxPid ? pid : throw new TtrpcException(StatusCode.Internal, $"the agent answered {call} with pid {pid}");

    private static string Truncate(string text) => text.Length <= 64 ? text : text[..64] + "...";
}
