using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Ttrpc.Server;

namespace FirecrackerContainerd.Shim.Tasks;

/// <summary>
/// Puts an <see cref="ITaskService"/> into a ttrpc method table under "containerd.task.v2.Task" and, for containerd
/// 2.x, under "containerd.task.v3.Task" (the same messages).
/// </summary>
public static class TaskServiceBinding
{
    /// <summary>Registers every Task RPC of <paramref name="service"/> in <paramref name="registry"/>, under both names.</summary>
    public static TtrpcServiceRegistry AddTaskService(this TtrpcServiceRegistry registry, ITaskService service)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(service);
        return registry.AddTaskService(ServiceNames.TaskV2, service).AddTaskService(ServiceNames.TaskV3, service);
    }

    private static TtrpcServiceRegistry AddTaskService(this TtrpcServiceRegistry registry, string name, ITaskService service)
    {
        return registry
            .AddUnary(name, "State", StateRequest.Parser, service.StateAsync)
            .AddUnary(name, "Create", CreateTaskRequest.Parser, service.CreateAsync)
            .AddUnary(name, "Start", StartRequest.Parser, service.StartAsync)
            .AddUnary(name, "Delete", DeleteRequest.Parser, service.DeleteAsync)
            .AddUnary(name, "Pids", PidsRequest.Parser, service.PidsAsync)
            .AddUnary(name, "Pause", PauseRequest.Parser, service.PauseAsync)
            .AddUnary(name, "Resume", ResumeRequest.Parser, service.ResumeAsync)
            .AddUnary(name, "Checkpoint", CheckpointTaskRequest.Parser, service.CheckpointAsync)
            .AddUnary(name, "Kill", KillRequest.Parser, service.KillAsync)
            .AddUnary(name, "Exec", ExecProcessRequest.Parser, service.ExecAsync)
            .AddUnary(name, "ResizePty", ResizePtyRequest.Parser, service.ResizePtyAsync)
            .AddUnary(name, "CloseIO", CloseIORequest.Parser, service.CloseIOAsync)
            .AddUnary(name, "Update", UpdateTaskRequest.Parser, service.UpdateAsync)
            .AddUnary(name, "Wait", WaitRequest.Parser, service.WaitAsync)
            .AddUnary(name, "Stats", StatsRequest.Parser, service.StatsAsync)
            .AddUnary(name, "Connect", ConnectRequest.Parser, service.ConnectAsync)
            .AddUnary(name, "Shutdown", ShutdownRequest.Parser, service.ShutdownAsync);
    }
}
