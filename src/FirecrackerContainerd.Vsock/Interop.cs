using System.Runtime.InteropServices;

namespace FirecrackerContainerd.Vsock;

/// <summary>The Linux calls the vsock device needs that .NET does not wrap: fd passing, mmap, eventfd, poll.</summary>
internal static unsafe partial class Interop
{
    public const int EAGAIN = 11;
    public const int EINTR = 4;
    public const int SOL_SOCKET = 1;
    public const int SCM_RIGHTS = 1;
    public const int MSG_DONTWAIT = 0x40;
    public const int MSG_CTRUNC = 0x8;
    public const int MSG_CMSG_CLOEXEC = 0x40000000;
    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;
    public const int MAP_SHARED = 1;
    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;
    public const short POLLIN = 1;

    /// <summary>struct iovec.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary>struct msghdr (x86_64 layout).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>struct pollfd.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(nint fd, MsgHdr* msg, int flags);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint addr, nuint length);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initval, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buf, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buf, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint nfds, int timeout);

    [LibraryImport("libc", EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int LStat(string path, byte* statBuffer);

    /// <summary>Whether <paramref name="path"/> is a socket; null when nothing is there.</summary>
    public static bool? IsSocket(string path)
    {
        // struct stat on x86_64 is 144 bytes; st_mode is the u32 at offset 24.
        byte* buffer = stackalloc byte[256];
        if (LStat(path, buffer) != 0)
        {
            return null;
        }
        const uint fileTypeMask = 0xF000;
        const uint socketType = 0xC000;
        return (*(uint*)(buffer + 24) & fileTypeMask) == socketType;
    }

    /// <summary>Turns the last errno into an exception naming the call and what it was applied to.</summary>
    public static IOException Error(string call, string subject)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{call} {subject}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
    }

    /// <summary>Maps a shared memory file (a guest RAM region) read-write.</summary>
    public static nint MapShared(int fd, ulong length, string subject)
    {
        nint address = Mmap(0, (nuint)length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (address == -1)
        {
            throw Error("mmap", subject);
        }
        return address;
    }

    /// <summary>Closes a file descriptor received from the peer, ignoring errors (it is ours to drop).</summary>
    public static void CloseQuietly(int fd)
    {
        if (fd >= 0)
        {
            _ = Close(fd);
        }
    }
}
