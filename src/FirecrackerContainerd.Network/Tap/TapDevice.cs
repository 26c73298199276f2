using System.Buffers.Binary;
using System.Text;
using FirecrackerContainerd.Native;
using FirecrackerContainerd.Network.Links;

namespace FirecrackerContainerd.Network.Tap;

/// <summary>
/// Makes persistent tap devices through <c>/dev/net/tun</c> in the calling thread's network namespace: the device
/// outlives the descriptor that made it, so a VMM can attach to it by name later.
/// </summary>
public static class TapDevice
{
    /// <summary><c>IFNAMSIZ</c> - 1: the longest interface name.</summary>
    public const int MaxNameLength = 15;

    // ioctl numbers from linux/if_tun.h (_IOW('T', nr, int)).
    internal const nuint TUNSETIFF = 0x400454CA;
    internal const nuint TUNSETPERSIST = 0x400454CB;
    internal const nuint TUNSETOWNER = 0x400454CC;
    internal const nuint TUNSETGROUP = 0x400454CE;

    internal const short IFF_TAP = 0x0002;
    internal const short IFF_NO_PI = 0x1000;
    internal const short IFF_VNET_HDR = 0x4000;
    internal const short IFF_TUN_EXCL = unchecked((short)0x8000);

    // sizeof(struct ifreq): name[IFNAMSIZ], then a union whose first member here is ifr_flags (short).
    internal const int IfreqSize = 40;
    private const int IfNameSize = 16;

    private const string TunDevice = "/dev/net/tun";

    /// <summary>
    /// Makes a persistent tap device, sets its owner and group when given, its MTU when given, and brings it up; a
    /// failure after the device exists removes it again.
    /// </summary>
    /// <returns>The tap as rtnetlink reports it once it is up.</returns>
    /// <exception cref="ArgumentException">The name is empty, too long, or contains '/', ':' or whitespace.</exception>
    /// <exception cref="IOException">The kernel refused a step; the message names the step and the tap.</exception>
    public static Link Create(Rtnetlink rtnetlink, TapOptions options)
    {
        ArgumentNullException.ThrowIfNull(rtnetlink);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Name is not null)
        {
            ValidateName(options.Name);
        }

        string name = MakePersistent(options);
        Link? tap = null;
        try
        {
            tap = rtnetlink.GetLink(name);
            if (options.Mtu is int mtu)
            {
                rtnetlink.SetMtu(tap, mtu);
            }

            rtnetlink.SetLinkUp(tap);
            return rtnetlink.GetLink(name);
        }
        catch
        {
            if (tap is not null)
            {
                TryDelete(rtnetlink, tap);
            }

            throw;
        }
    }

    /// <summary>Checks an interface name as the kernel's <c>dev_valid_name</c> does.</summary>
    /// <exception cref="ArgumentException">The name is empty, longer than 15 bytes, <c>.</c> or <c>..</c>, or contains '/', ':' or whitespace.</exception>
    public static void ValidateName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string? problem =
            name.Length == 0 ? "is empty"
            : Encoding.UTF8.GetByteCount(name) > MaxNameLength ? $"is longer than {MaxNameLength} bytes"
            : name is "." or ".." ? "is . or .."
            : name.Any(c => c is '/' or ':' || char.IsWhiteSpace(c) || char.IsControl(c)) ? "contains '/', ':', whitespace or a control character"
            : null;
        if (problem is not null)
        {
            throw new ArgumentException($"interface name \"{name}\" {problem}", nameof(name));
        }
    }

    /// <summary>The <c>struct ifreq</c> for <c>TUNSETIFF</c>: the name (NUL-padded), then the flags.</summary>
    internal static byte[] BuildIfreq(string? name, short flags)
    {
        byte[] ifreq = new byte[IfreqSize];

        // An empty name makes the kernel use its own "tap%d" template.
        Encoding.UTF8.GetBytes(name ?? "tap%d", ifreq.AsSpan(0, IfNameSize - 1));
        BinaryPrimitives.WriteInt16LittleEndian(ifreq.AsSpan(IfNameSize), flags);
        return ifreq;
    }

    private static unsafe string MakePersistent(TapOptions options)
    {
        string what = options.Name ?? "a new tap";
        int fd = Libc.Open(TunDevice, Libc.O_RDWR | Libc.O_CLOEXEC);
        if (fd < 0)
        {
            throw new IOException($"create tap {what}: open {TunDevice}: {Interop.ErrnoText(Interop.LastErrno)}");
        }

        try
        {
            // IFF_TUN_EXCL: a TUNSETIFF naming an existing tap would attach to it, and undoing a failure would then
            // delete a device that was never ours.
            short flags = (short)(IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL | (options.VirtioNetHeader ? IFF_VNET_HDR : 0));
            byte[] ifreq = BuildIfreq(options.Name, flags);
            fixed (byte* request = ifreq)
            {
                if (Libc.Ioctl(fd, TUNSETIFF, request) != 0)
                {
                    int errno = Interop.LastErrno;
                    string exists = errno == Interop.EBUSY ? $" (a device named {what} exists)" : string.Empty;
                    throw new IOException($"create tap {what}: TUNSETIFF: {Interop.ErrnoText(errno)}{exists}");
                }
            }

            // The kernel wrote the name it gave the device back into the request.
            int nul = ifreq.AsSpan(0, IfNameSize).IndexOf((byte)0);
            string name = Encoding.UTF8.GetString(ifreq, 0, nul < 0 ? IfNameSize : nul);
            if (options.OwnerUid is uint uid)
            {
                SetOrFail(fd, TUNSETOWNER, uid, $"create tap {name}: TUNSETOWNER {uid}");
            }

            if (options.OwnerGid is uint gid)
            {
                SetOrFail(fd, TUNSETGROUP, gid, $"create tap {name}: TUNSETGROUP {gid}");
            }

            // Last: until now, closing the descriptor takes the device away with it.
            SetOrFail(fd, TUNSETPERSIST, 1, $"create tap {name}: TUNSETPERSIST");
            return name;
        }
        finally
        {
            _ = Libc.Close(fd);
        }
    }

    private static void SetOrFail(int fd, nuint request, uint value, string what)
    {
        if (Libc.Ioctl(fd, request, (nint)value) != 0)
        {
            throw new IOException($"{what}: {Interop.ErrnoText(Interop.LastErrno)}");
        }
    }

    private static void TryDelete(Rtnetlink rtnetlink, Link tap)
    {
        try
        {
            rtnetlink.DeleteLink(tap);
        }
        catch (IOException)
        {
            // The first failure is the one to report.
        }
    }
}
