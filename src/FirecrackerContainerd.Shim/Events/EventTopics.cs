using FirecrackerContainerd.Protos.Events;
using Google.Protobuf;

namespace FirecrackerContainerd.Shim.Events;

/// <summary>The topic containerd expects for each task event message.</summary>
public static class EventTopics
{
    /// <summary>The topic for <paramref name="taskEvent"/>, e.g. "/tasks/exit" for TaskExit.</summary>
    /// <exception cref="ArgumentException">The message is not a known task event.</exception>
    public static string For(IMessage taskEvent) => taskEvent switch
    {
        TaskCreate => "/tasks/create",
        TaskStart => "/tasks/start",
        TaskExit => "/tasks/exit",
        TaskDelete => "/tasks/delete",
        TaskOOM => "/tasks/oom",
        TaskExecAdded => "/tasks/exec-added",
        TaskExecStarted => "/tasks/exec-started",
        TaskPaused => "/tasks/paused",
        TaskResumed => "/tasks/resumed",
        TaskCheckpointed => "/tasks/checkpointed",
        null => throw new ArgumentNullException(nameof(taskEvent)),
        _ => throw new ArgumentException($"no topic is known for event type {taskEvent.Descriptor.FullName}", nameof(taskEvent)),
    };
}
