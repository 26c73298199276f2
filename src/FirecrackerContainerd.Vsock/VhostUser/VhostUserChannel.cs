using System.Buffers.Binary;
using System.Net.Sockets;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Vsock.VhostUser;

/// <summary>Reads vhost-user messages (with their SCM_RIGHTS file descriptors) from the front-end's
/// Unix socket and writes replies. Framing only.</summary>
internal sealed class VhostUserChannel(Socket socket, string path)
{
    /// <summary>Reads the next message, or null when the front-end closed the connection.</summary>
    public async Task<VhostUserMessage?> ReadAsync(CancellationToken cancellationToken)
    {
        byte[] header = new byte[VhostUserProtocol.HeaderSize];
        var fds = new List<int>();
        int read = await ReceiveWithFdsAsync(header, fds, cancellationToken).ConfigureAwait(false);
        if (read == 0)
        {
            CloseAll(fds);
            return null;
        }
        try
        {
            await ReceiveExactlyAsync(header.AsMemory(read), cancellationToken).ConfigureAwait(false);
            var request = (VhostUserRequest)BinaryPrimitives.ReadUInt32LittleEndian(header);
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8));
            if ((flags & VhostUserProtocol.VersionMask) != VhostUserProtocol.Version)
            {
                throw new VhostUserProtocolException($"{request}: unsupported protocol version {flags & VhostUserProtocol.VersionMask} on {path}");
            }
            if (size > VhostUserProtocol.MaxPayloadSize)
            {
                throw new VhostUserProtocolException($"{request}: payload of {size} bytes exceeds {VhostUserProtocol.MaxPayloadSize} on {path}");
            }
            byte[] payload = new byte[size];
            await ReceiveExactlyAsync(payload, cancellationToken).ConfigureAwait(false);
            return new VhostUserMessage(request, flags, payload, [.. fds]);
        }
        catch
        {
            CloseAll(fds);
            throw;
        }
    }

    /// <summary>Sends a reply to <paramref name="request"/> with <paramref name="payload"/>.</summary>
    public async Task ReplyAsync(VhostUserRequest request, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        byte[] message = new byte[VhostUserProtocol.HeaderSize + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)request);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(4), VhostUserProtocol.Version | VhostUserProtocol.FlagReply);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), (uint)payload.Length);
        payload.Span.CopyTo(message.AsSpan(VhostUserProtocol.HeaderSize));
        int sent = 0;
        while (sent < message.Length)
        {
            sent += await socket.SendAsync(message.AsMemory(sent), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
    }

    public Task ReplyU64Async(VhostUserRequest request, ulong value, CancellationToken cancellationToken)
    {
        byte[] payload = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, value);
        return ReplyAsync(request, payload, cancellationToken);
    }

    private async Task ReceiveExactlyAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            int read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new VhostUserProtocolException($"front-end closed {path} in the middle of a message");
            }
            buffer = buffer[read..];
        }
    }

    // recvmsg with MSG_DONTWAIT; when nothing is there, a zero-byte receive waits for readability
    // without consuming anything, so the descriptors still arrive with the first byte.
    private async Task<int> ReceiveWithFdsAsync(byte[] buffer, List<int> fds, CancellationToken cancellationToken)
    {
        while (true)
        {
            int result = TryReceiveWithFds(buffer, fds, out int errno);
            if (result >= 0)
            {
                return result;
            }
            if (errno != Libc.EAGAIN && errno != Libc.EINTR)
            {
                throw new IOException($"recvmsg {path}: errno {errno}", errno);
            }
            await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
    }

    private unsafe int TryReceiveWithFds(byte[] buffer, List<int> fds, out int errno)
    {
        // cmsghdr: len u64, level i32, type i32, then the descriptors.
        const int cmsgHeaderSize = 16;
        byte* control = stackalloc byte[cmsgHeaderSize + (sizeof(int) * VhostUserProtocol.MaxFds) + 16];
        int controlLength = cmsgHeaderSize + (sizeof(int) * VhostUserProtocol.MaxFds) + 16;
        fixed (byte* data = buffer)
        {
            var iov = new Libc.IoVec { Base = data, Length = (nuint)buffer.Length };
            var msg = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)controlLength };
            nint received = Libc.RecvMsg((int)socket.SafeHandle.DangerousGetHandle(), &msg, Libc.MSG_DONTWAIT | Libc.MSG_CMSG_CLOEXEC);
            if (received < 0)
            {
                errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                return -1;
            }
            errno = 0;
            byte* cmsg = (byte*)msg.Control;
            long remaining = (long)msg.ControlLength;
            while (remaining >= cmsgHeaderSize)
            {
                ulong length = *(ulong*)cmsg;
                int level = *(int*)(cmsg + 8);
                int type = *(int*)(cmsg + 12);
                if (length < cmsgHeaderSize || (long)length > remaining)
                {
                    break;
                }
                if (level == Libc.SOL_SOCKET && type == Libc.SCM_RIGHTS)
                {
                    int count = (int)(length - cmsgHeaderSize) / sizeof(int);
                    for (int i = 0; i < count; i++)
                    {
                        fds.Add(((int*)(cmsg + cmsgHeaderSize))[i]);
                    }
                }
                long step = ((long)length + 7) & ~7L;
                cmsg += step;
                remaining -= step;
            }
            if ((msg.Flags & Libc.MSG_CTRUNC) != 0)
            {
                CloseAll(fds);
                throw new VhostUserProtocolException($"front-end sent more than {VhostUserProtocol.MaxFds} descriptors on {path}");
            }
            return (int)received;
        }
    }

    private static void CloseAll(List<int> fds)
    {
        foreach (int fd in fds)
        {
            Libc.CloseQuietly(fd);
        }
        fds.Clear();
    }
}
