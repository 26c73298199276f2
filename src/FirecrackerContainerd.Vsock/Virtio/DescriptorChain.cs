namespace FirecrackerContainerd.Vsock.Virtio;

/// <summary>One descriptor of a chain, already translated into this process and bounds-checked.</summary>
/// <param name="Host">Address of the buffer in this process.</param>
/// <param name="Length">Length in bytes.</param>
/// <param name="DeviceWritable">True for buffers the device fills (VIRTQ_DESC_F_WRITE).</param>
internal readonly record struct DescriptorSegment(nint Host, uint Length, bool DeviceWritable);

/// <summary>A descriptor chain popped from a virtqueue: its head index (returned in the used ring) and
/// either its checked segments or the reason the guest's chain was refused.</summary>
internal sealed class DescriptorChain
{
    private readonly DescriptorSegment[] _segments;

    private DescriptorChain(ushort head, DescriptorSegment[] segments, string? error)
    {
        Head = head;
        _segments = segments;
        Error = error;
        foreach (DescriptorSegment segment in segments)
        {
            if (segment.DeviceWritable)
            {
                WritableLength += segment.Length;
            }
            else
            {
                ReadableLength += segment.Length;
            }
        }
    }

    public static DescriptorChain Valid(ushort head, DescriptorSegment[] segments) => new(head, segments, null);

    public static DescriptorChain Invalid(ushort head, string error) => new(head, [], error);

    /// <summary>Descriptor index to report back in the used ring.</summary>
    public ushort Head { get; }

    /// <summary>Why the chain was refused, or null when it is usable.</summary>
    public string? Error { get; }

    public bool IsValid => Error is null;

    public IReadOnlyList<DescriptorSegment> Segments => _segments;

    /// <summary>Total bytes the device may read (driver-readable descriptors).</summary>
    public long ReadableLength { get; }

    /// <summary>Total bytes the device may write (device-writable descriptors).</summary>
    public long WritableLength { get; }

    /// <summary>Copies driver-readable bytes starting at <paramref name="offset"/> into
    /// <paramref name="destination"/>; returns how many were copied. The guest may change its memory
    /// at any moment, so callers parse only the copy.</summary>
    public unsafe int CopyFromReadable(long offset, Span<byte> destination)
    {
        int copied = 0;
        foreach (DescriptorSegment segment in _segments)
        {
            if (segment.DeviceWritable || copied == destination.Length)
            {
                continue;
            }
            if (offset >= segment.Length)
            {
                offset -= segment.Length;
                continue;
            }
            int count = (int)Math.Min(segment.Length - offset, destination.Length - copied);
            new ReadOnlySpan<byte>((byte*)segment.Host + offset, count).CopyTo(destination[copied..]);
            copied += count;
            offset = 0;
        }
        return copied;
    }

    /// <summary>Copies <paramref name="source"/> into the device-writable buffers starting at
    /// <paramref name="offset"/>; returns how many bytes fit.</summary>
    public unsafe int CopyToWritable(long offset, ReadOnlySpan<byte> source)
    {
        int copied = 0;
        foreach (DescriptorSegment segment in _segments)
        {
            if (!segment.DeviceWritable || copied == source.Length)
            {
                continue;
            }
            if (offset >= segment.Length)
            {
                offset -= segment.Length;
                continue;
            }
            int count = (int)Math.Min(segment.Length - offset, source.Length - copied);
            source.Slice(copied, count).CopyTo(new Span<byte>((byte*)segment.Host + offset, count));
            copied += count;
            offset = 0;
        }
        return copied;
    }
}
