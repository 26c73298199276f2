using System.Runtime.InteropServices;

namespace FirecrackerContainerd.Agent.Native;

/// <summary>The libc calls the agent needs: spawning and reaping processes, pipes, mounts, ioctls.</summary>
internal static unsafe partial class Interop
{
    internal const int EINTR = 4;
    internal const int ECHILD = 10;
    internal const int EAGAIN = 11;
    internal const int O_CLOEXEC = 0x80000;
    internal const int O_RDONLY = 0;
    internal const int O_RDWR = 2;
    internal const int PR_SET_CHILD_SUBREAPER = 36;

    // posix_spawn_file_actions_t is 80 bytes and posix_spawnattr_t 336 on glibc x86_64/arm64; room to spare.
    private const int SpawnStructBytes = 1024;

    /// <summary>Spawns <paramref name="argv"/>[0] (a path) with the given fds as its stdio; returns its pid.</summary>
    internal static int Spawn(string[] argv, string[] envp, int stdinFd, int stdoutFd, int stderrFd)
    {
        nint actions = Marshal.AllocHGlobal(SpawnStructBytes);
        nint argvBlock = 0;
        nint envBlock = 0;
        try
        {
            Check(posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init", argv[0]);
            try
            {
                Check(posix_spawn_file_actions_adddup2(actions, stdinFd, 0), "posix_spawn_file_actions_adddup2", argv[0]);
                Check(posix_spawn_file_actions_adddup2(actions, stdoutFd, 1), "posix_spawn_file_actions_adddup2", argv[0]);
                Check(posix_spawn_file_actions_adddup2(actions, stderrFd, 2), "posix_spawn_file_actions_adddup2", argv[0]);
                argvBlock = StringArray(argv);
                envBlock = StringArray(envp);
                int pid;
                int rc = posix_spawn(&pid, argv[0], actions, 0, argvBlock, envBlock);
                if (rc != 0)
                {
                    throw new IOException($"spawn {argv[0]}: {Marshal.GetPInvokeErrorMessage(rc)} (errno {rc})", rc);
                }

                return pid;
            }
            finally
            {
                _ = posix_spawn_file_actions_destroy(actions);
            }
        }
        finally
        {
            FreeStringArray(argvBlock, argv.Length);
            FreeStringArray(envBlock, envp.Length);
            Marshal.FreeHGlobal(actions);
        }
    }

    /// <summary>A pipe whose ends are close-on-exec (spawned children get them only through dup2).</summary>
    internal static (int Read, int Write) Pipe()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC) != 0)
        {
            throw LastError("pipe2", "");
        }

        return (fds[0], fds[1]);
    }

    /// <summary>waitpid(-1) blocking; returns (pid, raw status), or pid -ECHILD when there are no children.</summary>
    internal static (int Pid, int Status) WaitAny()
    {
        while (true)
        {
            int status;
            int pid = waitpid(-1, &status, 0);
            if (pid > 0)
            {
                return (pid, status);
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno == ECHILD)
            {
                return (-ECHILD, 0);
            }

            if (errno != EINTR)
            {
                throw new IOException($"waitpid: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
            }
        }
    }

    /// <summary>Makes this process adopt orphaned descendants (containers whose runtime process exited).</summary>
    internal static void BecomeSubreaper()
    {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
        {
            throw LastError("prctl(PR_SET_CHILD_SUBREAPER)", "");
        }
    }

    internal static bool Kill(int pid, int signal) => kill(pid, signal) == 0;

    internal static void Close(int fd)
    {
        if (fd >= 0)
        {
            _ = close(fd);
        }
    }

    internal static void Mount(string source, string target, string fsType, ulong flags, string? data)
    {
        if (mount(source, target, fsType, flags, data) != 0)
        {
            throw LastError("mount", $"{source} on {target} ({fsType})");
        }
    }

    internal static void Unmount(string target)
    {
        if (umount2(target, 0) != 0)
        {
            throw LastError("umount", target);
        }
    }

    /// <summary>ioctl(fd, request, 0); throws naming <paramref name="what"/>.</summary>
    internal static void Ioctl(int fd, nuint request, string what)
    {
        if (ioctl(fd, request, 0) != 0)
        {
            throw LastError("ioctl", what);
        }
    }

    internal static int Open(string path, int flags)
    {
        int fd = open(path, flags | O_CLOEXEC, 0);
        return fd >= 0 ? fd : throw LastError("open", path);
    }

    internal static IOException LastError(string call, string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{call} {what}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
    }

    private static void Check(int rc, string call, string what)
    {
        if (rc != 0)
        {
            throw new IOException($"{call} {what}: {Marshal.GetPInvokeErrorMessage(rc)}", rc);
        }
    }

    private static nint StringArray(string[] values)
    {
        nint block = Marshal.AllocHGlobal((values.Length + 1) * sizeof(nint));
        for (int i = 0; i < values.Length; i++)
        {
            Marshal.WriteIntPtr(block, i * sizeof(nint), Marshal.StringToCoTaskMemUTF8(values[i]));
        }

        Marshal.WriteIntPtr(block, values.Length * sizeof(nint), 0);
        return block;
    }

    private static void FreeStringArray(nint block, int count)
    {
        if (block == 0)
        {
            return;
        }

        for (int i = 0; i < count; i++)
        {
            Marshal.FreeCoTaskMem(Marshal.ReadIntPtr(block, i * sizeof(nint)));
        }

        Marshal.FreeHGlobal(block);
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int posix_spawn(int* pid, string path, nint fileActions, nint attributes, nint argv, nint envp);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_init(nint actions);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_destroy(nint actions);

    [LibraryImport("libc")]
    private static partial int posix_spawn_file_actions_adddup2(nint actions, int fd, int newFd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, int* status, int options);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, uint mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mount(string source, string target, string fsType, ulong flags, string? data);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int umount2(string target, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ioctl(int fd, nuint request, nint arg);
}
