using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Shim.Tasks;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime;

/// <summary>
/// The Task service while this shim cannot boot a microVM: it answers containerd honestly. Create fails with
/// FailedPrecondition and says why; every call naming a task answers NotFound, because no task ever exists;
/// Connect reports the shim; Shutdown exits the daemon.
/// </summary>
internal sealed partial class VmPendingTaskService(ShimDaemonContext context) : ITaskService
{
    /// <summary>The message containerd (and ctr) show for a refused Create.</summary>
    internal const string NotAvailable =
        "the microVM runtime is not available yet: this build of containerd-shim-aws-firecracker has no VM driver " +
        "(Firecracker or QEMU) and no guest agent wired in, so it cannot boot a microVM to run task";

    public Task<CreateTaskResponse> CreateAsync(CreateTaskRequest request, TtrpcCallContext call)
    {
        LogCreateRefused(context.Logger, request.Id);
        throw new TtrpcException(StatusCode.FailedPrecondition, $"{NotAvailable} \"{request.Id}\"");
    }

    public Task<ConnectResponse> ConnectAsync(ConnectRequest request, TtrpcCallContext call) =>
        Task.FromResult(new ConnectResponse { ShimPid = (uint)Environment.ProcessId });

    public Task<Empty> ShutdownAsync(ShutdownRequest request, TtrpcCallContext call)
    {
        // No task can exist, so nothing keeps this shim alive.
        context.Lifetime.RequestExit($"Shutdown requested for {request.Id}");
        return Task.FromResult(new Empty());
    }

    public Task<StateResponse> StateAsync(StateRequest request, TtrpcCallContext call) => throw NotFound(request.Id, request.ExecId);

    public Task<StartResponse> StartAsync(StartRequest request, TtrpcCallContext call) => throw NotFound(request.Id, request.ExecId);

    public Task<DeleteResponse> DeleteAsync(DeleteRequest request, TtrpcCallContext call) => throw NotFound(request.Id, request.ExecId);

    public Task<PidsResponse> PidsAsync(PidsRequest request, TtrpcCallContext call) => throw NotFound(request.Id, string.Empty);

    public Task<Empty> PauseAsync(PauseRequest request, TtrpcCallContext call) => throw NotFound(request.Id, string.Empty);

    public Task<Empty> ResumeAsync(ResumeRequest request, TtrpcCallContext call) => throw NotFound(request.Id, string.Empty);

    public Task<Empty> CheckpointAsync(CheckpointTaskRequest request, TtrpcCallContext call) => throw NotFound(request.Id, string.Empty);

    public Task<Empty> KillAsync(KillRequest request, TtrpcCallContext call) => throw NotFound(request.Id, request.ExecId);

    public Task<Empty> ExecAsync(ExecProcessRequest request, TtrpcCallContext call) => throw NotFound(request.Id, string.Empty);

    public Task<Empty> ResizePtyAsync(ResizePtyRequest request, TtrpcCallContext call) => throw NotFound(request.Id, request.ExecId);

    public Task<Empty> CloseIOAsync(CloseIORequest request, TtrpcCallContext call) => throw NotFound(request.Id, request.ExecId);

    public Task<Empty> UpdateAsync(UpdateTaskRequest request, TtrpcCallContext call) => throw NotFound(request.Id, string.Empty);

    public Task<WaitResponse> WaitAsync(WaitRequest request, TtrpcCallContext call) => throw NotFound(request.Id, request.ExecId);

    public Task<StatsResponse> StatsAsync(StatsRequest request, TtrpcCallContext call) => throw NotFound(request.Id, string.Empty);

    private static TtrpcException NotFound(string id, string execId) => new(StatusCode.NotFound,
        execId.Length == 0 ? $"task {id} not found: no task was ever created by this shim"
                           : $"exec {execId} of task {id} not found: no task was ever created by this shim");

    [LoggerMessage(Level = LogLevel.Warning, Message = "refusing Create of task {Id}: no microVM runtime")]
    private static partial void LogCreateRefused(ILogger logger, string id);
}
