using System.Buffers.Binary;

namespace FirecrackerContainerd.Ttrpc.Framing;

/// <summary>The 10-byte header in front of every ttrpc frame; all integers are big-endian.</summary>
/// <param name="Length">Bytes 0-3: the body length, not counting the header.</param>
/// <param name="StreamId">Bytes 4-7: the stream the frame belongs to (odd: client initiated).</param>
/// <param name="Type">Byte 8: the message type.</param>
/// <param name="Flags">Byte 9: type-dependent flags.</param>
internal readonly record struct FrameHeader(uint Length, uint StreamId, FrameType Type, FrameFlagBits Flags)
{
    /// <summary>Size of the encoded header (ttrpc <c>messageHeaderLength</c>).</summary>
    public const int Size = 10;

    /// <summary>Largest body a peer may send (ttrpc <c>messageLengthMax</c>, 4 MiB).</summary>
    public const int MaxDataLength = 4 << 20;

    /// <summary>True when the body is larger than the protocol allows.</summary>
    public bool IsOversized => Length > MaxDataLength;

    /// <summary>Decodes a header from the first <see cref="Size"/> bytes of <paramref name="source"/>.</summary>
    public static FrameHeader Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size)
        {
            throw new ArgumentException($"a frame header needs {Size} bytes, got {source.Length}", nameof(source));
        }

        return new FrameHeader(
            BinaryPrimitives.ReadUInt32BigEndian(source),
            BinaryPrimitives.ReadUInt32BigEndian(source[4..]),
            (FrameType)source[8],
            (FrameFlagBits)source[9]);
    }

    /// <summary>Encodes this header into the first <see cref="Size"/> bytes of <paramref name="destination"/>.</summary>
    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size)
        {
            throw new ArgumentException($"a frame header needs {Size} bytes, got {destination.Length}", nameof(destination));
        }

        BinaryPrimitives.WriteUInt32BigEndian(destination, Length);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], StreamId);
        destination[8] = (byte)Type;
        destination[9] = (byte)Flags;
    }
}
