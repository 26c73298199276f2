using FirecrackerContainerd.Native;
namespace FirecrackerContainerd.Network.Namespaces;

/// <summary>
/// Runs work inside a network namespace named by a path (<c>/var/run/netns/NAME</c>, <c>/proc/PID/ns/net</c>):
/// on a thread of its own that enters the namespace with <c>setns</c>, runs the work, and goes back to the namespace
/// it started in before it ends, so that no pooled thread is ever left in another namespace. Sockets, tap devices
/// and child processes made by the work belong to that namespace.
/// </summary>
public static class NetworkNamespace
{
    /// <summary>Runs <paramref name="work"/> inside the namespace at <paramref name="path"/> and returns its result.</summary>
    /// <exception cref="NetworkNamespaceNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="IOException">The path is not a network namespace, or entering or leaving it failed.</exception>
    public static Task<T> RunAsync<T>(string path, Func<T> work, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(work);
        cancellationToken.ThrowIfCancellationRequested();
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() => RunOnThisThread(path, work, completion))
        {
            IsBackground = true,
            Name = "netns " + Path.GetFileName(path),
        };
        thread.Start();
        return completion.Task;
    }

    /// <summary>Runs <paramref name="work"/> inside the namespace at <paramref name="path"/>.</summary>
    /// <exception cref="NetworkNamespaceNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    public static Task RunAsync(string path, Action work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        return RunAsync(path, () =>
        {
            work();
            return true;
        }, cancellationToken);
    }

    private static void RunOnThisThread<T>(string path, Func<T> work, TaskCompletionSource<T> completion)
    {
        int original = -1;
        int target = -1;
        try
        {
            original = OpenNamespace("/proc/thread-self/ns/net");
            target = OpenNamespace(path);
            Enter(target, path);
            T result;
            try
            {
                result = work();
            }
            finally
            {
                // The thread ends next; going back anyway keeps it honest should it ever be reused.
                Enter(original, "the thread's original network namespace");
            }

            // Only once back: completing may start a thread-pool thread from this one, and a new thread is born in
            // the namespace of the thread that makes it.
            completion.SetResult(result);
        }
#pragma warning disable CA1031 // Every failure on this thread belongs to the awaiting caller.
        catch (Exception e)
#pragma warning restore CA1031
        {
            completion.TrySetException(e);
        }
        finally
        {
            if (target >= 0)
            {
                _ = Libc.Close(target);
            }

            if (original >= 0)
            {
                _ = Libc.Close(original);
            }
        }
    }

    private static int OpenNamespace(string path)
    {
        int fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_CLOEXEC);
        if (fd >= 0)
        {
            return fd;
        }

        int errno = Interop.LastErrno;
        if (errno == Libc.ENOENT)
        {
            throw new NetworkNamespaceNotFoundException(path);
        }

        throw new IOException($"open network namespace {path}: {Interop.ErrnoText(errno)}");
    }

    private static void Enter(int fd, string path)
    {
        if (Libc.SetNs(fd, Interop.CLONE_NEWNET) != 0)
        {
            int errno = Interop.LastErrno;
            string why = errno == Interop.EINVAL ? "not a network namespace" : Interop.ErrnoText(errno);
            throw new IOException($"setns into network namespace {path}: {why}");
        }
    }
}

/// <summary>A network namespace path that names nothing (the namespace was never made, or is gone).</summary>
public sealed class NetworkNamespaceNotFoundException : IOException
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    public NetworkNamespaceNotFoundException(string path)
        : base($"network namespace {path} does not exist")
    {
        Path = path;
    }

    /// <summary>The path that names nothing.</summary>
    public string Path { get; }
}
