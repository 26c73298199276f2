using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Jail;

/// <summary>The system calls only the jail makes; each failure becomes a <see cref="JailException"/> naming the call and its object.</summary>
internal static unsafe partial class Syscalls
{
    internal const ulong MS_RDONLY = 0x1;
    internal const ulong MS_NOSUID = 0x2;
    internal const ulong MS_NODEV = 0x4;
    internal const ulong MS_NOEXEC = 0x8;
    internal const ulong MS_REMOUNT = 0x20;
    internal const ulong MS_BIND = 0x1000;
    internal const ulong MS_REC = 0x4000;
    internal const ulong MS_PRIVATE = 0x40000;

    private const int PR_SET_PDEATHSIG = 1;
    private const int PR_SET_SECCOMP = 22;
    private const int PR_CAPBSET_DROP = 24;
    private const int PR_SET_NO_NEW_PRIVS = 38;
    private const int SECCOMP_MODE_FILTER = 2;
    private const int EINVAL = 22;
    internal const int SIGKILL = 9;
    private const uint S_IFMT = 0xF000;
    private const uint S_IFCHR = 0x2000;
    private const uint S_IFBLK = 0x6000;

    // linux/if_tun.h: _IOW('T', 202, int), _IOW('T', 204, int), _IOW('T', 206, int).
    private const nuint TUNSETIFF = 0x400454ca;
    private const nuint TUNSETOWNER = 0x400454cc;
    private const nuint TUNSETGROUP = 0x400454ce;
    private const short IFF_TAP = 0x0002;
    private const short IFF_NO_PI = 0x1000;

    internal static void Unshare(int flags) => Check(Libc.Unshare(flags), "unshare", $"flags 0x{flags:x}");

    internal static void Mount(string? source, string target, string? type, ulong flags, string? data) =>
        Check(Libc.Mount(source, target, type, flags, data), "mount", $"{source ?? type ?? "(none)"} on {target}");

    internal static void Chroot(string path) => Check(ChrootNative(path), "chroot", path);

    internal static void Chdir(string path) => Check(ChdirNative(path), "chdir", path);

    internal static void SetHostname(string name)
    {
        byte[] bytes = System.Text.Encoding.ASCII.GetBytes(name);
        fixed (byte* p = bytes)
        {
            Check(SetHostnameNative(p, (nuint)bytes.Length), "sethostname", name);
        }
    }

    /// <summary>Empties the supplementary groups, then sets real, effective and saved gid and uid (gid first: afterwards we may not).</summary>
    internal static void BecomeUser(uint uid, uint gid)
    {
        Check(SetGroupsNative(0, null), "setgroups", "[]");
        Check(SetResGidNative(gid, gid, gid), "setresgid", gid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Check(SetResUidNative(uid, uid, uid), "setresuid", uid.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Empties the capability bounding set, so nothing exec'd later can regain a capability through a file.</summary>
    internal static void DropBoundingSet()
    {
        for (int cap = 0; cap < 64; cap++)
        {
            if (PrctlNative(PR_CAPBSET_DROP, (nuint)cap, 0, 0, 0) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == EINVAL)
                {
                    return;
                }

                throw new JailException("prctl(PR_CAPBSET_DROP)", $"capability {cap}", errno);
            }
        }
    }

    internal static void SetNoNewPrivileges() => Check(PrctlNative(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)", "1");

    internal static void SetParentDeathSignal(int signal) =>
        Check(PrctlNative(PR_SET_PDEATHSIG, (nuint)signal, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)", signal.ToString(System.Globalization.CultureInfo.InvariantCulture));

    internal static void InstallSeccomp(ReadOnlySpan<SeccompFilter.Instruction> program)
    {
        fixed (SeccompFilter.Instruction* p = program)
        {
            var fprog = new SockFprog { Length = (ushort)program.Length, Filter = p };
            Check(PrctlNative(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, (nuint)(&fprog), 0, 0), "prctl(PR_SET_SECCOMP)", $"{program.Length} instructions");
        }
    }

    /// <summary>Makes <paramref name="uid"/>:<paramref name="gid"/> the owner of TAP device <paramref name="name"/>, so the jailed VMM may attach to it.</summary>
    internal static void ChownTap(string name, uint uid, uint gid)
    {
        int fd = Libc.Open("/dev/net/tun", Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        Check(fd < 0 ? -1 : 0, "open", "/dev/net/tun");
        try
        {
            byte* ifreq = stackalloc byte[40];
            new Span<byte>(ifreq, 40).Clear();
            byte[] bytes = System.Text.Encoding.ASCII.GetBytes(name);
            if (bytes.Length > 15)
            {
                throw new JailException("TUNSETIFF", name, EINVAL);
            }

            bytes.CopyTo(new Span<byte>(ifreq, 16));
            *(short*)(ifreq + 16) = IFF_TAP | IFF_NO_PI;
            Check(Libc.Ioctl(fd, TUNSETIFF, ifreq), "ioctl(TUNSETIFF)", name);
            Check(Libc.Ioctl(fd, TUNSETOWNER, (nint)uid), "ioctl(TUNSETOWNER)", name);
            Check(Libc.Ioctl(fd, TUNSETGROUP, (nint)gid), "ioctl(TUNSETGROUP)", name);
        }
        finally
        {
            _ = Libc.Close(fd);
        }
    }

    /// <summary>
    /// Makes a device node at <paramref name="path"/> with the type, number and permission bits of host node
    /// <paramref name="hostPath"/>, owned by <paramref name="uid"/>:<paramref name="gid"/>.
    /// </summary>
    internal static void MakeDeviceLike(string hostPath, string path, uint uid, uint gid)
    {
        // struct stat (x86_64): st_mode at offset 24, st_rdev at 40, 144 bytes in all.
        byte* stat = stackalloc byte[144];
        Check(StatNative(hostPath, stat), "stat", hostPath);
        uint mode = *(uint*)(stat + 24);
        ulong device = *(ulong*)(stat + 40);
        if ((mode & S_IFMT) is not (S_IFCHR or S_IFBLK))
        {
            throw new JailException("mknod", $"{path}: {hostPath} is not a device node", EINVAL);
        }

        Check(MknodNative(path, mode & (S_IFMT | 0x1FF), device), "mknod", path);
        Check(ChownNative(path, uid, gid), "chown", path);
    }

    /// <summary>Makes descriptor <paramref name="fd"/> /dev/null (read-only), so the program never holds the pipe it was.</summary>
    internal static void ReplaceWithNull(int fd)
    {
        int nul = Libc.Open("/dev/null", Libc.O_RDONLY | Libc.O_CLOEXEC);
        Check(nul < 0 ? -1 : 0, "open", "/dev/null");
        try
        {
            // dup2 clears close-on-exec on the copy: the program gets /dev/null where the pipe was.
            Check(Dup2Native(nul, fd) < 0 ? -1 : 0, "dup2", $"/dev/null onto descriptor {fd}");
        }
        finally
        {
            _ = Libc.Close(nul);
        }
    }

    /// <summary>Replaces this process with <paramref name="program"/>, with an empty environment; returns only by throwing.</summary>
    internal static void Exec(string program, IReadOnlyList<string> argv)
    {
        nint[] pointers = new nint[argv.Count + 1];
        try
        {
            for (int i = 0; i < argv.Count; i++)
            {
                pointers[i] = Marshal.StringToCoTaskMemUTF8(argv[i]);
            }

            nint environment = 0;
            fixed (nint* p = pointers)
            {
                _ = ExecveNative(program, p, &environment);
            }

            throw new JailException("execve", program, Marshal.GetLastPInvokeError());
        }
        finally
        {
            foreach (nint pointer in pointers)
            {
                Marshal.FreeCoTaskMem(pointer);
            }
        }
    }

    private static void Check(int result, string call, string what)
    {
        if (result != 0)
        {
            throw new JailException(call, what, Marshal.GetLastPInvokeError());
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SockFprog
    {
        public ushort Length;
        public SeccompFilter.Instruction* Filter;
    }

    [LibraryImport("libc", EntryPoint = "chroot", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int ChrootNative(string path);

    [LibraryImport("libc", EntryPoint = "chdir", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int ChdirNative(string path);

    [LibraryImport("libc", EntryPoint = "sethostname", SetLastError = true)]
    private static partial int SetHostnameNative(byte* name, nuint length);

    [LibraryImport("libc", EntryPoint = "setgroups", SetLastError = true)]
    private static partial int SetGroupsNative(nuint size, uint* groups);

    [LibraryImport("libc", EntryPoint = "setresgid", SetLastError = true)]
    private static partial int SetResGidNative(uint real, uint effective, uint saved);

    [LibraryImport("libc", EntryPoint = "setresuid", SetLastError = true)]
    private static partial int SetResUidNative(uint real, uint effective, uint saved);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int PrctlNative(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int StatNative(string path, byte* buffer);

    [LibraryImport("libc", EntryPoint = "mknod", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MknodNative(string path, uint mode, ulong device);

    [LibraryImport("libc", EntryPoint = "chown", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int ChownNative(string path, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    private static partial int Dup2Native(int oldFd, int newFd);

    [LibraryImport("libc", EntryPoint = "execve", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int ExecveNative(string path, nint* argv, nint* environment);
}

/// <summary>A failed step of building the jail, naming the call, its object and the error.</summary>
internal sealed class JailException(string call, string what, int errno)
    : Exception($"{call} {what}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
