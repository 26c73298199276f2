using System.Runtime.InteropServices;
using System.Text;

namespace FirecrackerContainerd.Network.Tests.Support;

/// <summary>
/// Raw Ethernet frames for the redirect tests: an <c>AF_PACKET</c> socket bound to one link, and a descriptor
/// attached to a tap as a VMM attaches. Frames carry the local experimental EtherType 0x88B5 and a marker, so the
/// IPv6 chatter of links coming up is told apart.
/// </summary>
internal static partial class Frames
{
    public const ushort TestEtherType = 0x88B5;

    private const int AF_PACKET = 17;
    private const int SOCK_RAW = 3;
    private const ushort ETH_P_ALL_NETWORK_ORDER = 0x0300;
    private const short POLLIN = 1;

    /// <summary>A broadcast frame from a locally administered MAC carrying <paramref name="marker"/>.</summary>
    public static byte[] Build(string marker)
    {
        byte[] payload = Encoding.ASCII.GetBytes(marker);
        byte[] frame = new byte[Math.Max(60, 14 + payload.Length)];
        frame.AsSpan(0, 6).Fill(0xFF);
        new byte[] { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 }.CopyTo(frame, 6);
        frame[12] = TestEtherType >> 8;
        frame[13] = TestEtherType & 0xFF;
        payload.CopyTo(frame, 14);
        return frame;
    }

    /// <summary>Whether <paramref name="frame"/> (from offset <paramref name="skip"/>) is a test frame carrying <paramref name="marker"/>.</summary>
    public static bool Carries(ReadOnlySpan<byte> frame, string marker, int skip = 0)
    {
        frame = frame[Math.Min(skip, frame.Length)..];
        return frame.Length >= 14 && frame[12] == TestEtherType >> 8 && frame[13] == (TestEtherType & 0xFF)
            && frame[14..].StartsWith(Encoding.ASCII.GetBytes(marker));
    }

    /// <summary>An <c>AF_PACKET</c> socket bound to the link with index <paramref name="ifindex"/>, made in the calling thread's namespace.</summary>
    public static unsafe int OpenPacketSocket(int ifindex)
    {
        int fd = Socket(AF_PACKET, SOCK_RAW, ETH_P_ALL_NETWORK_ORDER);
        Assert.True(fd >= 0, $"socket(AF_PACKET): errno {Marshal.GetLastPInvokeError()}");

        // struct sockaddr_ll: family (u16), protocol (be16), ifindex (s32), hatype (u16), pkttype (u8), halen (u8), addr[8].
        byte* address = stackalloc byte[20];
        new Span<byte>(address, 20).Clear();
        *(ushort*)address = AF_PACKET;
        *(ushort*)(address + 2) = ETH_P_ALL_NETWORK_ORDER;
        *(int*)(address + 4) = ifindex;
        Assert.True(Bind(fd, address, 20) == 0, $"bind(AF_PACKET, ifindex {ifindex}): errno {Marshal.GetLastPInvokeError()}");
        return fd;
    }

    /// <summary>Attaches to the tap named <paramref name="name"/> (in the calling thread's namespace) as a VMM does, with or without a virtio-net header.</summary>
    public static unsafe int AttachTap(string name, bool virtioNetHeader)
    {
        int fd = Open("/dev/net/tun", 0x2 | 0x80000);
        Assert.True(fd >= 0, $"open /dev/net/tun: errno {Marshal.GetLastPInvokeError()}");
        byte[] ifreq = new byte[40];
        Encoding.ASCII.GetBytes(name, ifreq);
        short flags = (short)(0x0002 | 0x1000 | (virtioNetHeader ? 0x4000 : 0)); // IFF_TAP | IFF_NO_PI (| IFF_VNET_HDR)
        ifreq[16] = (byte)flags;
        ifreq[17] = (byte)(flags >> 8);
        fixed (byte* request = ifreq)
        {
            Assert.True(Ioctl(fd, 0x400454CA, request) == 0, $"TUNSETIFF {name}: errno {Marshal.GetLastPInvokeError()}");
        }

        return fd;
    }

    /// <summary>Writes one frame to <paramref name="fd"/> (a packet socket or a tap descriptor).</summary>
    public static unsafe void Send(int fd, byte[] frame)
    {
        fixed (byte* data = frame)
        {
            nint written = Write(fd, data, (nuint)frame.Length);
            Assert.True(written == frame.Length, $"write of {frame.Length} bytes returned {written} (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    /// <summary>Reads frames from <paramref name="fd"/> until one carries <paramref name="marker"/>; false when none comes within <paramref name="timeout"/>.</summary>
    public static unsafe bool WaitFor(int fd, string marker, TimeSpan timeout, int skip = 0)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        byte[] buffer = new byte[65536];
        while (DateTime.UtcNow < deadline)
        {
            PollFd poll = new() { Fd = fd, Events = POLLIN };
            int left = (int)Math.Max(1, (deadline - DateTime.UtcNow).TotalMilliseconds);
            if (Poll(&poll, 1, left) <= 0)
            {
                continue;
            }

            fixed (byte* data = buffer)
            {
                nint read = Read(fd, data, (nuint)buffer.Length);
                if (read > 0 && Carries(buffer.AsSpan(0, (int)read), marker, skip))
                {
                    return true;
                }
            }
        }

        return false;
    }

    public static void Close(int fd) => _ = CloseNative(fd);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static unsafe partial int Bind(int fd, void* address, uint length);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint Write(int fd, byte* data, nuint length);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint Read(int fd, byte* data, nuint length);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int CloseNative(int fd);
}
