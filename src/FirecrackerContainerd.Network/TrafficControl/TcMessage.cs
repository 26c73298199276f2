using System.Buffers.Binary;

namespace FirecrackerContainerd.Network.TrafficControl;

/// <summary>The <c>struct tcmsg</c> that leads every qdisc and filter message.</summary>
/// <param name="Index">Bytes 4-7: <c>tcm_ifindex</c>.</param>
/// <param name="Handle">Bytes 8-11: <c>tcm_handle</c>.</param>
/// <param name="Parent">Bytes 12-15: <c>tcm_parent</c>.</param>
/// <param name="Info">Bytes 16-19: <c>tcm_info</c> (for filters: priority in the upper 16 bits, protocol in network order below).</param>
internal readonly record struct TcMessage(int Index, uint Handle, uint Parent, uint Info)
{
    /// <summary>The message's bytes; byte 0 (<c>tcm_family</c>) is <c>AF_UNSPEC</c> and bytes 1-3 are padding.</summary>
    public byte[] ToBytes()
    {
        byte[] bytes = new byte[TcConstants.TcMessageSize];
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), Index);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), Handle);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(12), Parent);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(16), Info);
        return bytes;
    }

    /// <summary>Reads the header from the start of a payload the caller has checked to be long enough.</summary>
    public static TcMessage Read(ReadOnlySpan<byte> payload) => new(
        BinaryPrimitives.ReadInt32LittleEndian(payload[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(payload[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(payload[12..]),
        BinaryPrimitives.ReadUInt32LittleEndian(payload[16..]));
}
