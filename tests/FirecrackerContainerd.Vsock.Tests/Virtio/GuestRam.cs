using System.Buffers.Binary;
using System.Runtime.InteropServices;
using FirecrackerContainerd.Vsock.Virtio;

namespace FirecrackerContainerd.Vsock.Tests.Virtio;

/// <summary>A block of process memory posing as guest RAM at a chosen guest physical address.</summary>
internal sealed unsafe class GuestRam : IDisposable
{
    public const ulong GuestBase = 0x4000_0000;
    public const ulong UserBase = 0x7f00_0000_0000;

    private readonly byte* _host;

    public GuestRam(int size = 1 << 20)
    {
        Size = size;
        _host = (byte*)NativeMemory.AllocZeroed((nuint)size);
        Memory = new GuestMemory([new GuestMemoryRegion(GuestBase, (ulong)size, UserBase, (nint)_host)], null);
    }

    public int Size { get; }

    public GuestMemory Memory { get; }

    public Span<byte> Bytes(ulong guestAddress, int length) =>
        new(_host + (guestAddress - GuestBase), length);

    public void WriteU16(ulong guestAddress, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Bytes(guestAddress, 2), value);

    public void WriteU32(ulong guestAddress, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Bytes(guestAddress, 4), value);

    public void WriteU64(ulong guestAddress, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Bytes(guestAddress, 8), value);

    public ushort ReadU16(ulong guestAddress) => BinaryPrimitives.ReadUInt16LittleEndian(Bytes(guestAddress, 2));

    public uint ReadU32(ulong guestAddress) => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(guestAddress, 4));

    public void Dispose()
    {
        Memory.Dispose();
        NativeMemory.Free(_host);
    }
}

/// <summary>The driver's side of a split virtqueue, written by hand into <see cref="GuestRam"/>.</summary>
internal sealed class DriverQueue
{
    public const ushort FlagNext = 1;
    public const ushort FlagWrite = 2;
    public const ushort FlagIndirect = 4;

    private readonly GuestRam _ram;
    private ushort _availIdx;
    private ushort _usedSeen;

    /// <summary>Places the rings at <paramref name="ringBase"/> (guest address) for a queue of <paramref name="size"/>.</summary>
    public DriverQueue(GuestRam ram, ulong ringBase, ushort size)
    {
        _ram = ram;
        Size = size;
        DescTable = ringBase;
        AvailRing = DescTable + (16ul * size);
        UsedRing = (AvailRing + 6 + (2ul * size) + 3) & ~3ul;
    }

    public ushort Size { get; }
    public ulong DescTable { get; }
    public ulong AvailRing { get; }
    public ulong UsedRing { get; }

    public SplitVirtqueue CreateDeviceQueue()
    {
        VirtqueueLayout? layout = VirtqueueLayout.Create(_ram.Memory, Size,
            DescTable - GuestRam.GuestBase + GuestRam.UserBase,
            AvailRing - GuestRam.GuestBase + GuestRam.UserBase,
            UsedRing - GuestRam.GuestBase + GuestRam.UserBase);
        Assert.NotNull(layout);
        return new SplitVirtqueue(_ram.Memory, layout.Value, 0);
    }

    public void SetDescriptor(ushort index, ulong address, uint length, ushort flags, ushort next = 0)
    {
        ulong d = DescTable + (16ul * index);
        _ram.WriteU64(d, address);
        _ram.WriteU32(d + 8, length);
        _ram.WriteU16(d + 12, flags);
        _ram.WriteU16(d + 14, next);
    }

    /// <summary>Makes the chain starting at <paramref name="head"/> available and publishes the index.</summary>
    public void MakeAvailable(ushort head)
    {
        _ram.WriteU16(AvailRing + 4 + (2ul * (ushort)(_availIdx % Size)), head);
        _availIdx++;
        _ram.WriteU16(AvailRing + 2, _availIdx);
    }

    /// <summary>Sets the avail ring flags (bit 0: the driver asks for no interrupts).</summary>
    public void SetAvailFlags(ushort flags) => _ram.WriteU16(AvailRing, flags);

    /// <summary>Publishes an arbitrary available index (what a broken driver might do).</summary>
    public void PublishAvailIndex(ushort index) => _ram.WriteU16(AvailRing + 2, index);

    public ushort UsedIndex => _ram.ReadU16(UsedRing + 2);

    /// <summary>Reads the used entries the device added since the last call.</summary>
    public List<(uint Id, uint Length)> TakeUsed()
    {
        var entries = new List<(uint, uint)>();
        while (_usedSeen != UsedIndex)
        {
            ulong e = UsedRing + 4 + (8ul * (ushort)(_usedSeen % Size));
            entries.Add((_ram.ReadU32(e), _ram.ReadU32(e + 4)));
            _usedSeen++;
        }
        return entries;
    }
}
