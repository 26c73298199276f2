using System.Buffers.Binary;
using System.Text;

namespace FirecrackerContainerd.Network.Netlink;

/// <summary>
/// Writes one netlink request: the 16-byte <c>nlmsghdr</c>, the family's fixed header, then attributes (nested ones
/// through <see cref="BeginNested"/>/<see cref="EndNested"/>), all in host byte order and 4-byte aligned.
/// </summary>
internal sealed class NetlinkMessageBuilder
{
    private readonly List<byte> _bytes = new(256);
    private readonly Stack<int> _openNests = new();

    /// <summary>Starts a message of <paramref name="type"/> with <paramref name="flags"/>; the sequence number is set by <see cref="Build"/>.</summary>
    public NetlinkMessageBuilder(ushort type, ushort flags)
    {
        Span<byte> header = stackalloc byte[NetlinkConstants.MessageHeaderSize];
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], flags);
        Append(header);
        Type = type;
    }

    /// <summary>The message type (<c>RTM_*</c>).</summary>
    public ushort Type { get; }

    /// <summary>Appends the family header (<c>ifinfomsg</c>, <c>tcmsg</c>, ...), padded to alignment.</summary>
    public NetlinkMessageBuilder Fixed(ReadOnlySpan<byte> familyHeader)
    {
        Append(familyHeader);
        Pad();
        return this;
    }

    /// <summary>Appends an attribute whose value is <paramref name="value"/>.</summary>
    public NetlinkMessageBuilder Attribute(ushort type, ReadOnlySpan<byte> value)
    {
        int length = NetlinkConstants.AttributeHeaderSize + value.Length;
        if (length > ushort.MaxValue)
        {
            throw new ArgumentException($"netlink attribute {type} of {value.Length} bytes does not fit a 16-bit length", nameof(value));
        }

        Span<byte> header = stackalloc byte[NetlinkConstants.AttributeHeaderSize];
        BinaryPrimitives.WriteUInt16LittleEndian(header, (ushort)length);
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], type);
        Append(header);
        Append(value);
        Pad();
        return this;
    }

    /// <summary>Appends a u32 attribute in host (little-endian) byte order.</summary>
    public NetlinkMessageBuilder AttributeU32(ushort type, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return Attribute(type, bytes);
    }

    /// <summary>Appends a NUL-terminated string attribute, as the kernel's <c>NLA_STRING</c>/<c>NLA_NUL_STRING</c> policies read it.</summary>
    public NetlinkMessageBuilder AttributeString(ushort type, string value)
    {
        byte[] bytes = new byte[Encoding.UTF8.GetByteCount(value) + 1];
        Encoding.UTF8.GetBytes(value, bytes);
        return Attribute(type, bytes);
    }

    /// <summary>Opens a nested attribute; attributes until the matching <see cref="EndNested"/> are its value.</summary>
    public NetlinkMessageBuilder BeginNested(ushort type)
    {
        _openNests.Push(_bytes.Count);
        Span<byte> header = stackalloc byte[NetlinkConstants.AttributeHeaderSize];
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], type);
        Append(header);
        return this;
    }

    /// <summary>Closes the innermost nested attribute, writing its length.</summary>
    public NetlinkMessageBuilder EndNested()
    {
        int start = _openNests.Pop();
        int length = _bytes.Count - start;
        if (length > ushort.MaxValue)
        {
            throw new InvalidOperationException($"nested netlink attribute of {length} bytes does not fit a 16-bit length");
        }

        _bytes[start] = (byte)length;
        _bytes[start + 1] = (byte)(length >> 8);
        return this;
    }

    /// <summary>The finished message with its length and <paramref name="sequence"/> filled in.</summary>
    public byte[] Build(uint sequence)
    {
        if (_openNests.Count != 0)
        {
            throw new InvalidOperationException($"netlink message {Type} has {_openNests.Count} nested attribute(s) still open");
        }

        byte[] message = [.. _bytes];
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)message.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(8), sequence);
        return message;
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            _bytes.Add(b);
        }
    }

    private void Pad()
    {
        while (_bytes.Count % NetlinkConstants.Alignment != 0)
        {
            _bytes.Add(0);
        }
    }
}
