using System.Runtime.InteropServices;

namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>libc calls the shim's process plumbing needs (detaching the daemon from containerd's process group and pipes).</summary>
internal static partial class Interop
{
    private const int ORdWr = 2;

    [LibraryImport("libc", EntryPoint = "setsid", SetLastError = true)]
    private static partial int SetSid();

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    private static partial int Dup2(int oldFd, int newFd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    /// <summary>Starts a new session so signals to containerd's shim process group do not reach the daemon.</summary>
    internal static void StartNewSession()
    {
        if (SetSid() < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            // EPERM: already a group leader; nothing to detach from.
            if (errno != 1)
            {
                throw new IOException($"setsid failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
            }
        }
    }

    /// <summary>Points stdin, stdout and stderr at /dev/null so no pipe of the parent stays open in the daemon.</summary>
    internal static void DetachStandardStreams()
    {
        int fd = Open("/dev/null", ORdWr);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"open /dev/null failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
        }

        for (int target = 0; target <= 2; target++)
        {
            if (Dup2(fd, target) < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw new IOException($"dup2 /dev/null onto fd {target} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})");
            }
        }

        if (fd > 2)
        {
            _ = Close(fd);
        }
    }
}
