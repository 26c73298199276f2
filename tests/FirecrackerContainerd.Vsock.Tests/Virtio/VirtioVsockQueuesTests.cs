using FirecrackerContainerd.Vsock.Packet;
using FirecrackerContainerd.Vsock.Virtio;

namespace FirecrackerContainerd.Vsock.Tests.Virtio;

/// <summary>A backend that records what the device hands it and serves queued packets.</summary>
internal sealed class RecordingBackend : IVsockBackend
{
    public List<GuestPacket> Received { get; } = [];
    public List<VsockHeader> Rejected { get; } = [];
    public Queue<(VsockHeader Header, byte[] Payload)> ToGuest { get; } = new();

    public void OnGuestPacket(GuestPacket packet) => Received.Add(packet);

    public void OnRejectedPacket(VsockHeader header) => Rejected.Add(header);

    public bool HasRxWork => ToGuest.Count > 0;

    public VsockHeader? TakeRxPacket(Span<byte> payload, out int payloadLength)
    {
        payloadLength = 0;
        if (!ToGuest.TryDequeue(out var next))
        {
            return null;
        }
        payloadLength = Math.Min(payload.Length, next.Payload.Length);
        next.Payload.AsSpan(0, payloadLength).CopyTo(payload);
        return next.Header with { Length = (uint)payloadLength };
    }
}

public sealed class VirtioVsockQueuesTests : IDisposable
{
    private const ulong GuestCid = 3;
    private const ulong Buffers = GuestRam.GuestBase + 0x20000;
    private readonly GuestRam _ram = new();
    private readonly DriverQueue _rxDriver;
    private readonly DriverQueue _txDriver;
    private readonly RecordingBackend _backend = new();
    private readonly List<string> _reports = [];
    private readonly VirtioVsockQueues _queues;
    private int _rxSignals;
    private int _txSignals;

    public VirtioVsockQueuesTests()
    {
        _rxDriver = new DriverQueue(_ram, GuestRam.GuestBase, 16);
        _txDriver = new DriverQueue(_ram, GuestRam.GuestBase + 0x8000, 16);
        _queues = new VirtioVsockQueues(_rxDriver.CreateDeviceQueue(), _txDriver.CreateDeviceQueue(),
            new VsockPacketValidator(GuestCid), _backend, () => _rxSignals++, () => _txSignals++, _reports.Add);
    }

    public void Dispose() => _ram.Dispose();

    private void WriteHeader(ulong address, VsockHeader header) => header.Write(_ram.Bytes(address, VsockHeader.Size));

    [Fact]
    public void A_tx_packet_split_over_header_and_data_descriptors_reaches_the_backend()
    {
        WriteHeader(Buffers, new VsockHeader(GuestCid, 2, 1000, 52, 5, 1, VsockOp.Rw, 0, 65536, 0));
        "hello"u8.CopyTo(_ram.Bytes(Buffers + 0x100, 5));
        _txDriver.SetDescriptor(0, Buffers, VsockHeader.Size, DriverQueue.FlagNext, next: 1);
        _txDriver.SetDescriptor(1, Buffers + 0x100, 5, 0);
        _txDriver.MakeAvailable(0);

        _queues.ProcessTx();

        GuestPacket packet = Assert.Single(_backend.Received);
        Assert.Equal("hello"u8.ToArray(), packet.Payload);
        Assert.Equal([(0u, 0u)], _txDriver.TakeUsed());
        Assert.Equal(1, _txSignals);
    }

    [Fact]
    public void No_interrupt_is_sent_while_the_driver_has_interrupts_suppressed()
    {
        WriteHeader(Buffers, new VsockHeader(GuestCid, 2, 1000, 52, 0, 1, VsockOp.CreditUpdate, 0, 65536, 0));
        _txDriver.SetDescriptor(0, Buffers, VsockHeader.Size, 0);
        _txDriver.SetAvailFlags(1);
        _txDriver.MakeAvailable(0);

        _queues.ProcessTx();

        Assert.Single(_txDriver.TakeUsed());
        Assert.Equal(0, _txSignals);
    }

    [Fact]
    public void A_tx_chain_outside_guest_memory_is_returned_and_nothing_reaches_the_backend()
    {
        _txDriver.SetDescriptor(0, 0xdead_0000_0000, VsockHeader.Size, 0);
        _txDriver.MakeAvailable(0);

        _queues.ProcessTx();

        Assert.Empty(_backend.Received);
        Assert.Equal([(0u, 0u)], _txDriver.TakeUsed());
        Assert.Contains(_reports, r => r.Contains("outside guest memory"));
    }

    [Fact]
    public void A_tx_header_with_an_oversize_length_is_dropped_and_reset()
    {
        WriteHeader(Buffers, new VsockHeader(GuestCid, 2, 1000, 52, 1 << 20, 1, VsockOp.Rw, 0, 65536, 0));
        _txDriver.SetDescriptor(0, Buffers, VsockHeader.Size, 0);
        _txDriver.MakeAvailable(0);

        _queues.ProcessTx();

        Assert.Empty(_backend.Received);
        Assert.Single(_backend.Rejected);
        Assert.Single(_txDriver.TakeUsed());
    }

    [Fact]
    public void A_tx_chain_shorter_than_a_header_is_dropped()
    {
        _txDriver.SetDescriptor(0, Buffers, 20, 0);
        _txDriver.MakeAvailable(0);

        _queues.ProcessTx();

        Assert.Empty(_backend.Received);
        Assert.Empty(_backend.Rejected);
        Assert.Single(_txDriver.TakeUsed());
    }

    [Fact]
    public void An_rx_packet_fills_a_header_and_data_buffer_and_reports_its_length()
    {
        _rxDriver.SetDescriptor(0, Buffers, VsockHeader.Size, DriverQueue.FlagWrite | DriverQueue.FlagNext, next: 1);
        _rxDriver.SetDescriptor(1, Buffers + 0x100, 4096, DriverQueue.FlagWrite);
        _rxDriver.MakeAvailable(0);
        var header = new VsockHeader(2, GuestCid, 1u << 30, 52, 0, 1, VsockOp.Rw, 0, 65536, 0);
        _backend.ToGuest.Enqueue((header, "world"u8.ToArray()));

        _queues.ProcessRx();

        Assert.Equal([(0u, (uint)VsockHeader.Size + 5)], _rxDriver.TakeUsed());
        Assert.Equal(header with { Length = 5 }, VsockHeader.Read(_ram.Bytes(Buffers, VsockHeader.Size)));
        Assert.Equal("world"u8.ToArray(), _ram.Bytes(Buffers + 0x100, 5).ToArray());
        Assert.Equal(1, _rxSignals);
    }

    [Fact]
    public void Rx_buffers_are_kept_for_later_when_there_is_nothing_to_send()
    {
        _rxDriver.SetDescriptor(0, Buffers, 4096, DriverQueue.FlagWrite);
        _rxDriver.MakeAvailable(0);

        _queues.ProcessRx();
        Assert.Empty(_rxDriver.TakeUsed());

        _backend.ToGuest.Enqueue((new VsockHeader(2, GuestCid, 1, 2, 0, 1, VsockOp.Rst, 0, 0, 0), []));
        _queues.ProcessRx();
        Assert.Equal([(0u, (uint)VsockHeader.Size)], _rxDriver.TakeUsed());
    }

    [Fact]
    public void A_read_only_rx_buffer_is_returned_unused()
    {
        _rxDriver.SetDescriptor(0, Buffers, 4096, 0);
        _rxDriver.MakeAvailable(0);
        _backend.ToGuest.Enqueue((new VsockHeader(2, GuestCid, 1, 2, 0, 1, VsockOp.Rst, 0, 0, 0), []));

        _queues.ProcessRx();

        Assert.Equal([(0u, 0u)], _rxDriver.TakeUsed());
        Assert.Single(_backend.ToGuest);
    }
}
