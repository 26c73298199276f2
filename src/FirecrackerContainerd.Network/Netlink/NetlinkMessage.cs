using System.Buffers.Binary;

namespace FirecrackerContainerd.Network.Netlink;

/// <summary>One message of a netlink reply, checked against the buffer it came in.</summary>
/// <param name="Type">Bytes 4-5 of the header: <c>NLMSG_*</c> or the family's <c>RTM_*</c>.</param>
/// <param name="Flags">Bytes 6-7: <c>NLM_F_*</c>.</param>
/// <param name="Sequence">Bytes 8-11: the sequence number of the request this answers.</param>
/// <param name="PortId">Bytes 12-15: the port the message is addressed to.</param>
/// <param name="Payload">The bytes after the 16-byte header, up to the header's length.</param>
internal readonly record struct NetlinkMessage(ushort Type, ushort Flags, uint Sequence, uint PortId, ReadOnlyMemory<byte> Payload)
{
    /// <summary>Splits <paramref name="buffer"/> (one <c>recv</c>) into messages.</summary>
    /// <exception cref="NetlinkProtocolException">A header is cut short or claims more bytes than the buffer has.</exception>
    public static List<NetlinkMessage> ParseAll(ReadOnlyMemory<byte> buffer)
    {
        var messages = new List<NetlinkMessage>();
        int offset = 0;
        while (offset < buffer.Length)
        {
            ReadOnlySpan<byte> rest = buffer.Span[offset..];
            if (rest.Length < NetlinkConstants.MessageHeaderSize)
            {
                throw new NetlinkProtocolException($"netlink reply: {rest.Length} bytes left at offset {offset}, less than a {NetlinkConstants.MessageHeaderSize}-byte message header");
            }

            uint length = BinaryPrimitives.ReadUInt32LittleEndian(rest);
            if (length < NetlinkConstants.MessageHeaderSize || length > rest.Length)
            {
                throw new NetlinkProtocolException($"netlink reply: message at offset {offset} claims {length} bytes, {rest.Length} left");
            }

            messages.Add(new NetlinkMessage(
                BinaryPrimitives.ReadUInt16LittleEndian(rest[4..]),
                BinaryPrimitives.ReadUInt16LittleEndian(rest[6..]),
                BinaryPrimitives.ReadUInt32LittleEndian(rest[8..]),
                BinaryPrimitives.ReadUInt32LittleEndian(rest[12..]),
                buffer.Slice(offset + NetlinkConstants.MessageHeaderSize, (int)length - NetlinkConstants.MessageHeaderSize)));
            offset += Math.Min(NetlinkConstants.Align((int)length), rest.Length);
        }

        return messages;
    }

    /// <summary>The attributes after a family header of <paramref name="fixedHeaderSize"/> bytes.</summary>
    /// <exception cref="NetlinkProtocolException">The payload is shorter than the family header, or an attribute is malformed.</exception>
    public IReadOnlyList<NetlinkAttribute> Attributes(int fixedHeaderSize)
    {
        int start = NetlinkConstants.Align(fixedHeaderSize);
        if (Payload.Length < fixedHeaderSize)
        {
            throw new NetlinkProtocolException($"netlink message {Type}: {Payload.Length} payload bytes, less than its {fixedHeaderSize}-byte header");
        }

        return NetlinkAttribute.ParseAll(Payload[Math.Min(start, Payload.Length)..]);
    }
}
