namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>Why a task operation failed, in the classes of containerd's errdefs; the task service turns each into its ttrpc status.</summary>
internal enum TaskError
{
    /// <summary>Nothing went wrong that has a class of its own (a runtime command failed, say).</summary>
    Unknown,

    /// <summary>No such task, exec or process.</summary>
    NotFound,

    /// <summary>A task or exec of that id exists already.</summary>
    AlreadyExists,

    /// <summary>The request itself is wrong.</summary>
    InvalidArgument,

    /// <summary>The request does not fit the state of the task or process.</summary>
    FailedPrecondition,
}

/// <summary>A task operation that failed; the message names the operation, the task or exec and what went wrong.</summary>
internal sealed class TaskException : Exception
{
    public TaskException(TaskError error, string message)
        : base(message)
    {
        Error = error;
    }

    public TaskException(TaskError error, string message, Exception innerException)
        : base(message, innerException)
    {
        Error = error;
    }

    /// <summary>The failure's class.</summary>
    public TaskError Error { get; }
}
