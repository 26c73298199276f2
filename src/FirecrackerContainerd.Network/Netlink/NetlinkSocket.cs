using System.Buffers.Binary;
using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Network.Netlink;

/// <summary>
/// A <c>NETLINK_ROUTE</c> socket: sends one request at a time and reads its answer (an ack, one reply, or a
/// multi-part dump), matched by sequence number. The socket works in the network namespace of the thread that
/// opened it, whichever thread uses it later.
/// </summary>
internal sealed class NetlinkSocket : IDisposable
{
    // A dump part is at most a page or NLMSG_GOODSIZE; 64 KiB holds any one recv with room to spare.
    private const int ReceiveBufferSize = 64 * 1024;

    // The kernel answers at once; a reply that has not come by then is not coming.
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(10);

    private const int DumpAttempts = 5;

    private readonly int _fd;
    private readonly uint _portId;
    private readonly bool _capAck;
    private readonly byte[] _receiveBuffer = new byte[ReceiveBufferSize];
    private uint _sequence;
    private bool _disposed;

    private NetlinkSocket(int fd, uint portId, bool capAck)
    {
        _fd = fd;
        _portId = portId;
        _capAck = capAck;
    }

    /// <summary>Opens a route netlink socket in the calling thread's network namespace.</summary>
    public static unsafe NetlinkSocket OpenRoute()
    {
        int fd = Libc.Socket(Interop.AF_NETLINK, Interop.SOCK_RAW | Interop.SOCK_CLOEXEC, Interop.NETLINK_ROUTE);
        if (fd < 0)
        {
            int errno = Interop.LastErrno;
            throw new IOException($"rtnetlink: socket(AF_NETLINK, NETLINK_ROUTE): {Interop.ErrnoText(errno)}");
        }

        try
        {
            int one = 1;

            // Errors then echo only the request's header, and carry the kernel's own explanation.
            bool capAck = Interop.SetSockOpt(fd, Interop.SOL_NETLINK, Interop.NETLINK_CAP_ACK, &one, sizeof(int)) == 0;
            _ = Interop.SetSockOpt(fd, Interop.SOL_NETLINK, Interop.NETLINK_EXT_ACK, &one, sizeof(int));

            long* timeout = stackalloc long[2];
            timeout[0] = (long)ReplyTimeout.TotalSeconds;
            timeout[1] = 0;
            Check(Interop.SetSockOpt(fd, Libc.SOL_SOCKET, Interop.SO_RCVTIMEO, timeout, 16), "setsockopt(SO_RCVTIMEO)");

            // struct sockaddr_nl: family (u16), pad (u16), pid (u32; 0 = the kernel picks), groups (u32).
            byte* address = stackalloc byte[12];
            new Span<byte>(address, 12).Clear();
            address[0] = Interop.AF_NETLINK;
            Check(Libc.Bind(fd, address, 12), "bind");
            uint length = 12;
            Check(Interop.GetSockName(fd, address, &length), "getsockname");
            uint portId = BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(address + 4, 4));
            return new NetlinkSocket(fd, portId, capAck);
        }
        catch
        {
            _ = Libc.Close(fd);
            throw;
        }
    }

    /// <summary>Sends a request that changes something and waits for the kernel's ack.</summary>
    /// <exception cref="NetlinkException">The kernel refused it.</exception>
    public void Execute(NetlinkRequest request)
    {
        uint sequence = Send(request);
        while (true)
        {
            foreach (NetlinkMessage message in Receive(request, sequence))
            {
                if (message.Type == NetlinkConstants.NLMSG_ERROR)
                {
                    ThrowIfError(message, request);
                    return;
                }
            }
        }
    }

    /// <summary>Sends a get request that is answered by exactly one message and returns it.</summary>
    /// <exception cref="NetlinkException">The kernel refused it (e.g. ENODEV for an unknown link).</exception>
    public NetlinkMessage Get(NetlinkRequest request)
    {
        uint sequence = Send(request);
        while (true)
        {
            foreach (NetlinkMessage message in Receive(request, sequence))
            {
                if (message.Type == NetlinkConstants.NLMSG_ERROR)
                {
                    ThrowIfError(message, request);
                    continue;
                }

                return message;
            }
        }
    }

    /// <summary>Sends a dump request and returns every message of the answer; a dump the kernel marks as interrupted is retried.</summary>
    /// <exception cref="NetlinkException">The kernel refused it.</exception>
    public List<NetlinkMessage> Dump(NetlinkRequest request)
    {
        for (int attempt = 1; ; attempt++)
        {
            uint sequence = Send(request);
            var replies = new List<NetlinkMessage>();
            bool interrupted = false;
            bool done = false;
            while (!done)
            {
                foreach (NetlinkMessage message in Receive(request, sequence))
                {
                    interrupted |= (message.Flags & NetlinkConstants.NLM_F_DUMP_INTR) != 0;
                    if (message.Type == NetlinkConstants.NLMSG_DONE)
                    {
                        ThrowIfDoneCarriesError(message, request);
                        done = true;
                        break;
                    }

                    if (message.Type == NetlinkConstants.NLMSG_ERROR)
                    {
                        ThrowIfError(message, request);
                        continue;
                    }

                    replies.Add(message);
                }
            }

            if (!interrupted)
            {
                return replies;
            }

            if (attempt == DumpAttempts)
            {
                throw new NetlinkException(Libc.EAGAIN, request.Operation + $" (the dump changed under us {DumpAttempts} times)", request.Device);
            }
        }
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _ = Libc.Close(_fd);
        }
    }

    private unsafe uint Send(NetlinkRequest request)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        uint sequence = ++_sequence;
        byte[] bytes = request.Message.Build(sequence);
        byte* kernel = stackalloc byte[12];
        new Span<byte>(kernel, 12).Clear();
        kernel[0] = Interop.AF_NETLINK;
        fixed (byte* data = bytes)
        {
            while (true)
            {
                nint sent = Interop.SendTo(_fd, data, (nuint)bytes.Length, 0, kernel, 12);
                if (sent == bytes.Length)
                {
                    return sequence;
                }

                int errno = Interop.LastErrno;
                if (sent < 0 && errno == Libc.EINTR)
                {
                    continue;
                }

                throw new IOException($"rtnetlink: {request.Operation}{On(request)}: sending the request: {(sent < 0 ? Interop.ErrnoText(errno) : $"{sent} of {bytes.Length} bytes sent")}");
            }
        }
    }

    // One recv's messages that answer this request; others (late answers to an earlier request) are dropped.
    private unsafe List<NetlinkMessage> Receive(NetlinkRequest request, uint sequence)
    {
        nint received;
        fixed (byte* buffer = _receiveBuffer)
        {
            while (true)
            {
                received = Interop.Recv(_fd, buffer, (nuint)_receiveBuffer.Length, Interop.MSG_TRUNC);
                if (received >= 0)
                {
                    break;
                }

                int errno = Interop.LastErrno;
                if (errno == Libc.EINTR)
                {
                    continue;
                }

                string why = errno == Libc.EAGAIN ? $"no answer within {ReplyTimeout.TotalSeconds:0} s" : Interop.ErrnoText(errno);
                throw new IOException($"rtnetlink: {request.Operation}{On(request)}: receiving the answer: {why}");
            }
        }

        if (received > _receiveBuffer.Length)
        {
            throw new NetlinkProtocolException($"rtnetlink: {request.Operation}{On(request)}: an answer of {received} bytes does not fit the {_receiveBuffer.Length}-byte buffer");
        }

        // The messages keep slices of their own copy: the buffer is reused by the next recv.
        byte[] copy = _receiveBuffer.AsSpan(0, (int)received).ToArray();
        return NetlinkMessage.ParseAll(copy).Where(m => m.Sequence == sequence && m.PortId == _portId).ToList();
    }

    private void ThrowIfError(NetlinkMessage message, NetlinkRequest request)
    {
        ReadOnlySpan<byte> payload = message.Payload.Span;
        if (payload.Length < 4)
        {
            throw new NetlinkProtocolException($"rtnetlink: {request.Operation}{On(request)}: an error message of {payload.Length} bytes has no error code");
        }

        int error = BinaryPrimitives.ReadInt32LittleEndian(payload);
        if (error == 0)
        {
            return;
        }

        throw new NetlinkException(-error, request.Operation, request.Device, KernelMessage(message));
    }

    private static void ThrowIfDoneCarriesError(NetlinkMessage message, NetlinkRequest request)
    {
        if (message.Payload.Length >= 4)
        {
            int error = BinaryPrimitives.ReadInt32LittleEndian(message.Payload.Span);
            if (error < 0)
            {
                throw new NetlinkException(-error, request.Operation, request.Device);
            }
        }
    }

    // The extended ack's NLMSGERR_ATTR_MSG: after the error code and the echoed request (only its header with
    // NETLINK_CAP_ACK), when NLM_F_ACK_TLVS says attributes follow.
    private string? KernelMessage(NetlinkMessage message)
    {
        if ((message.Flags & NetlinkConstants.NLM_F_ACK_TLVS) == 0 || message.Payload.Length < 4 + NetlinkConstants.MessageHeaderSize)
        {
            return null;
        }

        int echoed = _capAck
            ? NetlinkConstants.MessageHeaderSize
            : NetlinkConstants.Align((int)BinaryPrimitives.ReadUInt32LittleEndian(message.Payload.Span[4..]));
        int start = 4 + echoed;
        if (start > message.Payload.Length)
        {
            return null;
        }

        try
        {
            return NetlinkAttribute.ParseAll(message.Payload[start..]).Find(NetlinkConstants.NLMSGERR_ATTR_MSG)?.AsString();
        }
        catch (NetlinkProtocolException)
        {
            // The explanation is a courtesy; a garbled one must not hide the errno.
            return null;
        }
    }

    private static string On(NetlinkRequest request) => request.Device is null ? string.Empty : $" on {request.Device}";

    private static void Check(int result, string call)
    {
        if (result != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"rtnetlink: {call} on a netlink socket: {Interop.ErrnoText(errno)}");
        }
    }
}
