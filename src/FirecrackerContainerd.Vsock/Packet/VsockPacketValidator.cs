using FirecrackerContainerd.Vsock.Virtio;

namespace FirecrackerContainerd.Vsock.Packet;

/// <summary>Vsock addressing and size limits.</summary>
internal static class VsockLimits
{
    /// <summary>The host's context id.</summary>
    public const ulong HostCid = 2;

    /// <summary>Largest payload one packet may carry (the Linux driver's and Firecracker's 64 KiB).</summary>
    public const uint MaxPayload = 64 * 1024;
}

/// <summary>A packet the guest put on the TX queue, checked: the header is consistent and the payload
/// (copied out of guest memory) has exactly the announced length.</summary>
internal sealed record GuestPacket(VsockHeader Header, byte[] Payload)
{
    public VsockShutdownFlags ShutdownFlags => (VsockShutdownFlags)(Header.Flags & (uint)VsockShutdownFlags.Both);
}

/// <summary>What became of a TX chain: a packet to act on, a packet to answer with RST, or nothing.</summary>
internal readonly record struct TxParseResult(GuestPacket? Packet, VsockHeader? ResetFor, string? Error);

/// <summary>Parses the guest's TX chains into <see cref="GuestPacket"/>s, refusing anything malformed.
/// This is the only place guest packet bytes are interpreted.</summary>
internal sealed class VsockPacketValidator(ulong guestCid)
{
    public ulong GuestCid { get; } = guestCid;

    public TxParseResult Parse(DescriptorChain chain)
    {
        if (!chain.IsValid)
        {
            return new TxParseResult(null, null, chain.Error);
        }
        Span<byte> headerBytes = stackalloc byte[VsockHeader.Size];
        if (chain.CopyFromReadable(0, headerBytes) < VsockHeader.Size)
        {
            return new TxParseResult(null, null, $"chain holds {chain.ReadableLength} readable bytes, less than a header");
        }
        return Parse(VsockHeader.Read(headerBytes), chain.ReadableLength - VsockHeader.Size,
            payload => chain.CopyFromReadable(VsockHeader.Size, payload));
    }

    /// <summary>Checks a header whose payload (at most <paramref name="available"/> bytes) is read by
    /// <paramref name="copyPayload"/> once the length is known to be sane.</summary>
    public TxParseResult Parse(VsockHeader header, long available, Func<Span<byte>, int> copyPayload)
    {
        if (header.SrcCid != GuestCid)
        {
            return new TxParseResult(null, null, $"source cid {header.SrcCid} is not the guest's {GuestCid}");
        }
        if (header.DstCid != VsockLimits.HostCid)
        {
            return new TxParseResult(null, null, $"destination cid {header.DstCid} is not the host");
        }
        if (header.Type != VsockHeader.TypeStream)
        {
            return new TxParseResult(null, header, $"socket type {header.Type} is not stream");
        }
        if (header.Op is < VsockOp.Request or > VsockOp.CreditRequest)
        {
            return new TxParseResult(null, header, $"unknown op {(ushort)header.Op}");
        }
        if (header.Length > VsockLimits.MaxPayload)
        {
            return new TxParseResult(null, header, $"payload length {header.Length} exceeds {VsockLimits.MaxPayload}");
        }
        if (header.Op != VsockOp.Rw && header.Length != 0)
        {
            return new TxParseResult(null, header, $"op {header.Op} carries {header.Length} payload bytes");
        }
        if (header.Length > available)
        {
            return new TxParseResult(null, header, $"payload length {header.Length} exceeds the {available} bytes in the chain");
        }
        byte[] payload = header.Length == 0 ? [] : new byte[header.Length];
        if (payload.Length > 0 && copyPayload(payload) != payload.Length)
        {
            return new TxParseResult(null, header, "payload shorter than announced");
        }
        return new TxParseResult(new GuestPacket(header, payload), null, null);
    }
}
