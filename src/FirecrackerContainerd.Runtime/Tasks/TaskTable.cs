using FirecrackerContainerd.Ttrpc;

namespace FirecrackerContainerd.Runtime.Tasks;

/// <summary>
/// The tasks this shim runs and their processes, by task id and exec id: what State, Wait and Connect are answered
/// from, what the guest's events are checked against, and what a VM that dies turns into exits.
/// </summary>
internal sealed class TaskTable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, TaskRecord> _tasks = new(StringComparer.Ordinal);

    /// <summary>How many tasks there are.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _tasks.Count;
            }
        }
    }

    /// <summary>Records a created task.</summary>
    /// <exception cref="TtrpcException">AlreadyExists: a task with its id is recorded.</exception>
    public void Add(TaskRecord task)
    {
        lock (_gate)
        {
            if (!_tasks.TryAdd(task.Id, task))
            {
                throw new TtrpcException(StatusCode.AlreadyExists, $"task {task.Id} already exists");
            }
        }
    }

    /// <summary>Forgets a deleted task, and its execs with it.</summary>
    public void Remove(string id)
    {
        lock (_gate)
        {
            _tasks.Remove(id);
        }
    }

    /// <summary>Records a created exec of <paramref name="task"/>.</summary>
    /// <exception cref="TtrpcException">AlreadyExists: the task has an exec of that id.</exception>
    public void AddExec(TaskRecord task, ProcessRecord exec)
    {
        lock (_gate)
        {
            if (!task.Execs.TryAdd(exec.Id, exec))
            {
                throw new TtrpcException(StatusCode.AlreadyExists, $"exec {exec.Id} of task {task.Id} already exists");
            }
        }
    }

    /// <summary>Forgets a deleted exec.</summary>
    public void RemoveExec(TaskRecord task, string execId)
    {
        lock (_gate)
        {
            task.Execs.Remove(execId);
        }
    }

    /// <summary>The task <paramref name="id"/> and its process <paramref name="execId"/> (its init when empty).</summary>
    /// <exception cref="TtrpcException">NotFound: no such task or exec.</exception>
    public (TaskRecord Task, ProcessRecord Process) Find(string id, string execId)
    {
        lock (_gate)
        {
            if (!_tasks.TryGetValue(id, out TaskRecord? task))
            {
                throw new TtrpcException(StatusCode.NotFound, $"task {id} not found");
            }

            if (execId.Length == 0)
            {
                return (task, task.Init);
            }

            return task.Execs.TryGetValue(execId, out ProcessRecord? exec)
                ? (task, exec)
                : throw new TtrpcException(StatusCode.NotFound, $"exec {execId} of task {id} not found");
        }
    }

    /// <summary>The task <paramref name="id"/>, or null.</summary>
    public TaskRecord? TryFind(string id)
    {
        lock (_gate)
        {
            return _tasks.GetValueOrDefault(id);
        }
    }

    /// <summary>
    /// The process a guest event names: <paramref name="id"/> is the task's own id for its init, an exec id otherwise;
    /// null when this shim knows no such process.
    /// </summary>
    public ProcessRecord? ProcessOf(string containerId, string id)
    {
        lock (_gate)
        {
            return !_tasks.TryGetValue(containerId, out TaskRecord? task) ? null
                : id == containerId ? task.Init
                : task.Execs.GetValueOrDefault(id);
        }
    }

    /// <summary>
    /// True while a task remains that a client waited for (its init, or one of its execs not deleted yet): such a
    /// client deletes what it waited for once it has the exit.
    /// </summary>
    public bool ExpectsDeletes()
    {
        lock (_gate)
        {
            return _tasks.Values.Any(t => t.Init.IsAwaited || t.Execs.Values.Any(e => e.IsAwaited));
        }
    }

    /// <summary>Every process whose exit is not known yet, inits first.</summary>
    public IReadOnlyList<ProcessRecord> Unfinished()
    {
        lock (_gate)
        {
            return [.. _tasks.Values.SelectMany(t => t.Execs.Values.Prepend(t.Init)).Where(p => !p.HasExited)];
        }
    }
}
