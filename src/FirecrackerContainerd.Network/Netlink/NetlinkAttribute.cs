using System.Buffers.Binary;
using System.Text;

namespace FirecrackerContainerd.Network.Netlink;

/// <summary>One attribute (<c>struct nlattr</c> and its value) of a netlink message.</summary>
/// <param name="Type">The attribute type, with <c>NLA_F_NESTED</c> and <c>NLA_F_NET_BYTEORDER</c> masked off.</param>
/// <param name="Value">The value bytes (the attribute's length minus its 4-byte header, without padding).</param>
internal readonly record struct NetlinkAttribute(ushort Type, ReadOnlyMemory<byte> Value)
{
    /// <summary>Splits <paramref name="buffer"/> into attributes.</summary>
    /// <exception cref="NetlinkProtocolException">An attribute is cut short or claims more bytes than remain.</exception>
    public static IReadOnlyList<NetlinkAttribute> ParseAll(ReadOnlyMemory<byte> buffer)
    {
        var attributes = new List<NetlinkAttribute>();
        int offset = 0;
        while (offset < buffer.Length)
        {
            ReadOnlySpan<byte> rest = buffer.Span[offset..];
            if (rest.Length < NetlinkConstants.AttributeHeaderSize)
            {
                throw new NetlinkProtocolException($"netlink attribute at offset {offset}: {rest.Length} bytes left, less than a {NetlinkConstants.AttributeHeaderSize}-byte header");
            }

            int length = BinaryPrimitives.ReadUInt16LittleEndian(rest);
            ushort type = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(rest[2..]) & NetlinkConstants.NLA_TYPE_MASK);
            if (length < NetlinkConstants.AttributeHeaderSize || length > rest.Length)
            {
                throw new NetlinkProtocolException($"netlink attribute {type} at offset {offset} claims {length} bytes, {rest.Length} left");
            }

            attributes.Add(new NetlinkAttribute(type, buffer.Slice(offset + NetlinkConstants.AttributeHeaderSize, length - NetlinkConstants.AttributeHeaderSize)));
            offset += Math.Min(NetlinkConstants.Align(length), rest.Length);
        }

        return attributes;
    }

    /// <summary>The value as a host-order u32.</summary>
    /// <exception cref="NetlinkProtocolException">The value is not 4 bytes.</exception>
    public uint AsU32()
    {
        if (Value.Length != 4)
        {
            throw new NetlinkProtocolException($"netlink attribute {Type}: expected a 4-byte integer, got {Value.Length} bytes");
        }

        return BinaryPrimitives.ReadUInt32LittleEndian(Value.Span);
    }

    /// <summary>The value as a string, up to its NUL terminator (or its end when it has none).</summary>
    public string AsString()
    {
        ReadOnlySpan<byte> bytes = Value.Span;
        int nul = bytes.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul >= 0 ? bytes[..nul] : bytes);
    }

    /// <summary>The value parsed as nested attributes.</summary>
    public IReadOnlyList<NetlinkAttribute> AsNested() => ParseAll(Value);
}

/// <summary>Lookups over a parsed attribute list.</summary>
internal static class NetlinkAttributeListExtensions
{
    /// <summary>The first attribute of <paramref name="type"/>, or null.</summary>
    public static NetlinkAttribute? Find(this IReadOnlyList<NetlinkAttribute> attributes, ushort type)
    {
        foreach (NetlinkAttribute attribute in attributes)
        {
            if (attribute.Type == type)
            {
                return attribute;
            }
        }

        return null;
    }
}
