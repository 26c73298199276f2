using FirecrackerContainerd.Native;
namespace FirecrackerContainerd.Network.Namespaces;

/// <summary>
/// Runs work inside a network namespace named by a path (<c>/var/run/netns/NAME</c>, <c>/proc/PID/ns/net</c>):
/// on a thread of its own that enters the namespace with <c>setns</c>, runs the work, and goes back to the namespace
/// it started in before it ends, so that no pooled thread is ever left in another namespace. Sockets, tap devices
/// and child processes made by the work belong to that namespace. Also makes and removes namespaces pinned at a path.
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

    /// <summary>
    /// Makes a new, empty network namespace pinned at <paramref name="path"/> (a bind mount of the namespace, as
    /// <c>ip netns add</c> makes under /var/run/netns), so that it outlives the thread that made it. A path that holds
    /// a network namespace already is kept as it is.
    /// </summary>
    /// <returns>True when a namespace was made, false when <paramref name="path"/> held one already.</returns>
    /// <exception cref="IOException">The path holds something else, or a step failed; the message names the step and the path.</exception>
    public static async Task<bool> CreateAsync(string path, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        try
        {
            await RunAsync(path, () => true, cancellationToken).ConfigureAwait(false);
            return false;
        }
        catch (NetworkNamespaceNotFoundException)
        {
        }

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using (new FileStream(path, FileMode.CreateNew, FileAccess.Write))
        {
            // The bind mount needs a file to mount over.
        }

        var completion = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() => PinNewNamespace(path, completion))
        {
            IsBackground = true,
            Name = "netns create " + Path.GetFileName(path),
        };
        thread.Start();
        try
        {
            return await completion.Task.ConfigureAwait(false);
        }
        catch
        {
            File.Delete(path);
            throw;
        }
    }

    /// <summary>
    /// Unpins and removes the namespace file at <paramref name="path"/> (what <see cref="CreateAsync"/> made); the
    /// namespace ends with its last user. Nothing to do when the path is gone.
    /// </summary>
    /// <exception cref="IOException">The unmount or the removal failed.</exception>
    public static void Remove(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Libc.Umount2(path, Interop.MNT_DETACH) != 0)
        {
            int errno = Interop.LastErrno;
            // EINVAL: nothing is mounted there (a file left by a failed creation).
            if (errno != Libc.ENOENT && errno != Interop.EINVAL)
            {
                throw new IOException($"unmount network namespace {path}: {Interop.ErrnoText(errno)}");
            }
        }

        File.Delete(path);
    }

    // unshare gives this thread alone a new namespace; the bind mount keeps it once the thread goes back and ends.
    private static void PinNewNamespace(string path, TaskCompletionSource<bool> completion)
    {
        int original = -1;
        try
        {
            original = OpenNamespace("/proc/thread-self/ns/net");
            if (Libc.Unshare(Libc.CLONE_NEWNET) != 0)
            {
                throw new IOException($"unshare a network namespace for {path}: {Interop.ErrnoText(Interop.LastErrno)}");
            }

            try
            {
                if (Libc.Mount("/proc/thread-self/ns/net", path, null, Interop.MS_BIND, null) != 0)
                {
                    throw new IOException($"bind-mount a new network namespace at {path}: {Interop.ErrnoText(Interop.LastErrno)}");
                }
            }
            finally
            {
                Enter(original, "the thread's original network namespace");
            }

            completion.SetResult(true);
        }
#pragma warning disable CA1031 // Every failure on this thread belongs to the awaiting caller.
        catch (Exception e)
#pragma warning restore CA1031
        {
            completion.TrySetException(e);
        }
        finally
        {
            if (original >= 0)
            {
                _ = Libc.Close(original);
            }
        }
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
        if (Libc.SetNs(fd, Libc.CLONE_NEWNET) != 0)
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
