using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Shim.Tasks;

/// <summary>
/// The containerd.task.v2.Task API a runtime implements. Throw <see cref="FirecrackerContainerd.Ttrpc.TtrpcException"/>
/// (or a mapped exception such as <see cref="KeyNotFoundException"/>) to answer with a status; an RPC the runtime does
/// not support must answer Unimplemented (code 12).
/// </summary>
public interface ITaskService
{
    /// <summary>State of a task or exec.</summary>
    Task<StateResponse> StateAsync(StateRequest request, TtrpcCallContext context);

    /// <summary>Creates the task (containerd calls this right after <c>start</c>).</summary>
    Task<CreateTaskResponse> CreateAsync(CreateTaskRequest request, TtrpcCallContext context);

    /// <summary>Starts the task or an exec.</summary>
    Task<StartResponse> StartAsync(StartRequest request, TtrpcCallContext context);

    /// <summary>Deletes the task or an exec.</summary>
    Task<DeleteResponse> DeleteAsync(DeleteRequest request, TtrpcCallContext context);

    /// <summary>Lists the task's processes.</summary>
    Task<PidsResponse> PidsAsync(PidsRequest request, TtrpcCallContext context);

    /// <summary>Pauses the task.</summary>
    Task<Empty> PauseAsync(PauseRequest request, TtrpcCallContext context);

    /// <summary>Resumes the task.</summary>
    Task<Empty> ResumeAsync(ResumeRequest request, TtrpcCallContext context);

    /// <summary>Checkpoints the task.</summary>
    Task<Empty> CheckpointAsync(CheckpointTaskRequest request, TtrpcCallContext context);

    /// <summary>Signals the task or an exec.</summary>
    Task<Empty> KillAsync(KillRequest request, TtrpcCallContext context);

    /// <summary>Adds an exec process.</summary>
    Task<Empty> ExecAsync(ExecProcessRequest request, TtrpcCallContext context);

    /// <summary>Resizes a process's terminal.</summary>
    Task<Empty> ResizePtyAsync(ResizePtyRequest request, TtrpcCallContext context);

    /// <summary>Closes a process's stdin.</summary>
    Task<Empty> CloseIOAsync(CloseIORequest request, TtrpcCallContext context);

    /// <summary>Updates the task's resources.</summary>
    Task<Empty> UpdateAsync(UpdateTaskRequest request, TtrpcCallContext context);

    /// <summary>Waits (with no deadline) until the task or exec exits.</summary>
    Task<WaitResponse> WaitAsync(WaitRequest request, TtrpcCallContext context);

    /// <summary>Resource statistics of the task.</summary>
    Task<StatsResponse> StatsAsync(StatsRequest request, TtrpcCallContext context);

    /// <summary>The shim and task pids (containerd's health check).</summary>
    Task<ConnectResponse> ConnectAsync(ConnectRequest request, TtrpcCallContext context);

    /// <summary>Asks the shim to exit once it serves no more tasks (or at once when <c>now</c> is set).</summary>
    Task<Empty> ShutdownAsync(ShutdownRequest request, TtrpcCallContext context);
}
