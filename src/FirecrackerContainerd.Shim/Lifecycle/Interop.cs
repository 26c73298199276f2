using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>libc calls the shim's process plumbing needs (detaching the daemon from containerd's process group and pipes).</summary>
internal static partial class Interop
{
    [LibraryImport("libc", EntryPoint = "setsid", SetLastError = true)]
    private static partial int SetSid();

    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    private static partial int Dup2(int oldFd, int newFd);

    /// <summary>Starts a new session so signals to containerd's shim process group do not reach the daemon.</summary>
    internal static void StartNewSession()
    {
        if (SetSid() < 0)
        {
            ErrnoException e = Libc.Error("setsid");

            // EPERM: already a group leader; nothing to detach from.
            if (e.Errno != 1)
            {
                throw e;
            }
        }
    }

    /// <summary>Points stdin, stdout and stderr at /dev/null so no pipe of the parent stays open in the daemon.</summary>
    internal static void DetachStandardStreams()
    {
        int fd = Libc.Check(Libc.Open("/dev/null", Libc.O_RDWR), "open", "/dev/null");

        for (int target = 0; target <= 2; target++)
        {
            _ = Libc.Check(Dup2(fd, target), "dup2", $"/dev/null onto fd {target}");
        }

        if (fd > 2)
        {
            _ = Libc.Close(fd);
        }
    }
}
