using System.Buffers.Binary;

namespace FirecrackerContainerd.Vsock.Packet;

/// <summary>virtio-vsock operations (the header's op field).</summary>
internal enum VsockOp : ushort
{
    Request = 1,
    Response = 2,
    Rst = 3,
    Shutdown = 4,
    Rw = 5,
    CreditUpdate = 6,
    CreditRequest = 7,
}

/// <summary>SHUTDOWN flags: what the sender of the packet will no longer do.</summary>
[Flags]
internal enum VsockShutdownFlags : uint
{
    None = 0,
    /// <summary>The sender will receive no more data.</summary>
    Receive = 1,
    /// <summary>The sender will send no more data.</summary>
    Send = 2,
    Both = Receive | Send,
}

/// <summary>The 44-byte little-endian virtio_vsock_hdr that starts every vsock packet.</summary>
internal readonly record struct VsockHeader(
    ulong SrcCid,
    ulong DstCid,
    uint SrcPort,
    uint DstPort,
    uint Length,
    ushort Type,
    VsockOp Op,
    uint Flags,
    uint BufAlloc,
    uint FwdCnt)
{
    /// <summary>Bytes of the header on the wire.</summary>
    public const int Size = 44;

    /// <summary>The only socket type virtio-vsock carries here.</summary>
    public const ushort TypeStream = 1;

    // Field offsets in the header.
    private const int SrcCidOffset = 0;
    private const int DstCidOffset = 8;
    private const int SrcPortOffset = 16;
    private const int DstPortOffset = 20;
    private const int LenOffset = 24;
    private const int TypeOffset = 28;
    private const int OpOffset = 30;
    private const int FlagsOffset = 32;
    private const int BufAllocOffset = 36;
    private const int FwdCntOffset = 40;

    /// <summary>Reads the fields as they are, without judging them (see <see cref="VsockPacketValidator"/>).</summary>
    public static VsockHeader Read(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < Size)
        {
            throw new ArgumentException($"a vsock header needs {Size} bytes, got {bytes.Length}", nameof(bytes));
        }
        return new VsockHeader(
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[SrcCidOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[DstCidOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[SrcPortOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[DstPortOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[LenOffset..]),
            BinaryPrimitives.ReadUInt16LittleEndian(bytes[TypeOffset..]),
            (VsockOp)BinaryPrimitives.ReadUInt16LittleEndian(bytes[OpOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[FlagsOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[BufAllocOffset..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[FwdCntOffset..]));
    }

    public void Write(Span<byte> bytes)
    {
        if (bytes.Length < Size)
        {
            throw new ArgumentException($"a vsock header needs {Size} bytes, got {bytes.Length}", nameof(bytes));
        }
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[SrcCidOffset..], SrcCid);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[DstCidOffset..], DstCid);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[SrcPortOffset..], SrcPort);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[DstPortOffset..], DstPort);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[LenOffset..], Length);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[TypeOffset..], Type);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[OpOffset..], (ushort)Op);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[FlagsOffset..], Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[BufAllocOffset..], BufAlloc);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[FwdCntOffset..], FwdCnt);
    }
}
