using System.Buffers.Binary;

namespace FirecrackerContainerd.Vsock.Virtio;

/// <summary>Where a split virtqueue lives and how big it is, as the driver configured it (addresses are
/// already host pointers, checked to lie inside guest memory).</summary>
internal readonly record struct VirtqueueLayout(ushort Size, nint DescriptorTable, nint AvailRing, nint UsedRing)
{
    /// <summary>Largest queue size the device accepts (virtio allows 32768; vsock drivers use 128-256).</summary>
    public const ushort MaxSize = 1024;

    /// <summary>Bytes of one descriptor: addr u64, len u32, flags u16, next u16.</summary>
    public const int DescriptorSize = 16;

    public static long DescriptorTableBytes(ushort size) => (long)DescriptorSize * size;

    /// <summary>flags u16, idx u16, ring[size] u16, used_event u16.</summary>
    public static long AvailRingBytes(ushort size) => 6 + (2L * size);

    /// <summary>flags u16, idx u16, ring[size] of (id u32, len u32), avail_event u16.</summary>
    public static long UsedRingBytes(ushort size) => 6 + (8L * size);

    /// <summary>Translates the three ring addresses (in the VMM's address space) through guest memory;
    /// null when the size is not a power of two within bounds or any ring is not entirely inside it.</summary>
    public static VirtqueueLayout? Create(GuestMemory memory, uint size, ulong descUser, ulong availUser, ulong usedUser)
    {
        if (size == 0 || size > MaxSize || (size & (size - 1)) != 0)
        {
            return null;
        }
        ushort n = (ushort)size;
        if (!memory.TryTranslateUser(descUser, (ulong)DescriptorTableBytes(n), out nint desc)
            || !memory.TryTranslateUser(availUser, (ulong)AvailRingBytes(n), out nint avail)
            || !memory.TryTranslateUser(usedUser, (ulong)UsedRingBytes(n), out nint used))
        {
            return null;
        }
        return new VirtqueueLayout(n, desc, avail, used);
    }
}

/// <summary>The device side of a split virtqueue: pops descriptor chains the driver made available,
/// validating every index, address and length, and returns them through the used ring.</summary>
internal sealed unsafe class SplitVirtqueue
{
    private const ushort DescFlagNext = 1;
    private const ushort DescFlagWrite = 2;
    private const ushort DescFlagIndirect = 4;
    private const ushort AvailFlagNoInterrupt = 1;

    private readonly GuestMemory _memory;
    private readonly VirtqueueLayout _layout;
    private ushort _nextAvail;
    private ushort _nextUsed;

    public SplitVirtqueue(GuestMemory memory, VirtqueueLayout layout, ushort nextAvail)
    {
        _memory = memory;
        _layout = layout;
        _nextAvail = nextAvail;
        _nextUsed = Volatile.Read(ref *(ushort*)(layout.UsedRing + 2));
    }

    public ushort Size => _layout.Size;

    /// <summary>Index of the next available entry the device will read (GET_VRING_BASE reports it).</summary>
    public ushort NextAvail => _nextAvail;

    /// <summary>Set when the driver published an impossible available index; the queue is then dead.</summary>
    public string? BrokenReason { get; private set; }

    /// <summary>True when the driver has made at least one chain available.</summary>
    public bool HasAvailable => BrokenReason is null && ReadAvailIndex() != _nextAvail && CheckAvailIndex();

    /// <summary>Pops the next available chain, or null when none is available. A chain the guest got
    /// wrong is returned marked invalid so the caller still hands its head back.</summary>
    public DescriptorChain? Pop()
    {
        if (!HasAvailable)
        {
            return null;
        }
        ushort head = ReadAvailRingEntry(_nextAvail);
        _nextAvail++;
        return Walk(head);
    }

    /// <summary>Gives back the chain popped last, unread (used when the device had nothing to put in it).</summary>
    public void Unpop() => _nextAvail--;

    /// <summary>Returns a chain to the driver with the number of bytes the device wrote into it.</summary>
    public void AddUsed(ushort head, uint writtenLength)
    {
        byte* entry = (byte*)_layout.UsedRing + 4 + (8 * (_nextUsed % _layout.Size));
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(entry, 4), head);
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(entry + 4, 4), writtenLength);
        _nextUsed++;
        // The entry must be visible before the index that publishes it.
        Volatile.Write(ref *(ushort*)(_layout.UsedRing + 2), _nextUsed);
    }

    /// <summary>False while the driver asks not to be interrupted (VIRTQ_AVAIL_F_NO_INTERRUPT); the Linux
    /// driver re-checks the used ring when it turns interrupts back on, so skipping is safe and spares
    /// an emulated guest an interrupt per packet.</summary>
    public bool DriverWantsInterrupt
    {
        get
        {
            Interlocked.MemoryBarrier();
            return (Volatile.Read(ref *(ushort*)_layout.AvailRing) & AvailFlagNoInterrupt) == 0;
        }
    }

    private ushort ReadAvailIndex() => Volatile.Read(ref *(ushort*)(_layout.AvailRing + 2));

    private bool CheckAvailIndex()
    {
        ushort pending = (ushort)(ReadAvailIndex() - _nextAvail);
        if (pending > _layout.Size)
        {
            BrokenReason = $"driver made {pending} chains available on a queue of {_layout.Size}";
            return false;
        }
        return true;
    }

    private ushort ReadAvailRingEntry(ushort index) =>
        Volatile.Read(ref *(ushort*)(_layout.AvailRing + 4 + (2 * (index % _layout.Size))));

    private DescriptorChain Walk(ushort head)
    {
        if (head >= _layout.Size)
        {
            return DescriptorChain.Invalid(head, $"head index {head} outside a queue of {_layout.Size}");
        }
        var segments = new List<DescriptorSegment>(2);
        ushort index = head;
        long total = 0;
        // A chain visits each descriptor at most once, so more than Size hops means a loop.
        for (int hops = 0; ; hops++)
        {
            if (hops >= _layout.Size)
            {
                return DescriptorChain.Invalid(head, "descriptor chain loops or is longer than the queue");
            }
            byte* desc = (byte*)_layout.DescriptorTable + (VirtqueueLayout.DescriptorSize * index);
            // One copy of the descriptor: the guest may rewrite it while we look.
            ulong address = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(desc, 8));
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(desc + 8, 4));
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(new ReadOnlySpan<byte>(desc + 12, 2));
            ushort next = BinaryPrimitives.ReadUInt16LittleEndian(new ReadOnlySpan<byte>(desc + 14, 2));
            if ((flags & DescFlagIndirect) != 0)
            {
                return DescriptorChain.Invalid(head, "indirect descriptors were not negotiated");
            }
            if (!_memory.TryTranslate(address, length, out nint host))
            {
                return DescriptorChain.Invalid(head, $"descriptor {index} [0x{address:x}, +{length}) lies outside guest memory");
            }
            total += length;
            if (total > DescriptorChainLimits.MaxChainBytes)
            {
                return DescriptorChain.Invalid(head, $"descriptor chain longer than {DescriptorChainLimits.MaxChainBytes} bytes");
            }
            segments.Add(new DescriptorSegment(host, length, (flags & DescFlagWrite) != 0));
            if ((flags & DescFlagNext) == 0)
            {
                return DescriptorChain.Valid(head, [.. segments]);
            }
            if (next >= _layout.Size)
            {
                return DescriptorChain.Invalid(head, $"descriptor {index} links to {next}, outside a queue of {_layout.Size}");
            }
            index = next;
        }
    }
}

/// <summary>Bounds on what one descriptor chain may describe.</summary>
internal static class DescriptorChainLimits
{
    /// <summary>No vsock packet needs more than a header plus 64 KiB; 1 MiB leaves room for odd layouts
    /// while keeping a hostile chain from making the device touch all of guest RAM.</summary>
    public const long MaxChainBytes = 1 << 20;
}
