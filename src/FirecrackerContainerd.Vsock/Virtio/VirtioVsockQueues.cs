using FirecrackerContainerd.Vsock.Packet;

namespace FirecrackerContainerd.Vsock.Virtio;

/// <summary>The side of the device that owns connections: it takes the guest's packets and produces
/// packets for the guest. Called with the device lock held.</summary>
internal interface IVsockBackend
{
    /// <summary>A well-formed packet from the guest.</summary>
    void OnGuestPacket(GuestPacket packet);

    /// <summary>A packet whose header was readable but not acceptable; the backend answers it with RST.</summary>
    void OnRejectedPacket(VsockHeader header);

    /// <summary>True when <see cref="TakeRxPacket"/> would produce a packet.</summary>
    bool HasRxWork { get; }

    /// <summary>The next packet for the guest, its payload written into <paramref name="payload"/>.</summary>
    VsockHeader? TakeRxPacket(Span<byte> payload, out int payloadLength);
}

/// <summary>The virtio glue of the vsock device: drains the TX queue into the backend and fills the
/// guest's RX buffers from it. Queue 0 is RX (device to driver), 1 is TX, 2 (events) is unused.</summary>
internal sealed class VirtioVsockQueues(SplitVirtqueue rx, SplitVirtqueue tx, VsockPacketValidator validator,
    IVsockBackend backend, Action signalRx, Action signalTx, Action<string> report)
{
    private readonly byte[] _payloadScratch = new byte[VsockLimits.MaxPayload];
    private readonly byte[] _headerScratch = new byte[VsockHeader.Size];

    public SplitVirtqueue Rx => rx;

    public SplitVirtqueue Tx => tx;

    /// <summary>Processes every chain the guest made available on TX, then refills RX.</summary>
    public void ProcessTx()
    {
        bool used = false;
        while (tx.Pop() is { } chain)
        {
            TxParseResult result = validator.Parse(chain);
            if (result.Packet is { } packet)
            {
                backend.OnGuestPacket(packet);
            }
            else
            {
                report($"tx packet dropped: {result.Error}");
                if (result.ResetFor is { } header)
                {
                    backend.OnRejectedPacket(header);
                }
            }
            // TX buffers are only read: nothing written.
            tx.AddUsed(chain.Head, 0);
            used = true;
        }
        if (tx.BrokenReason is { } reason)
        {
            report($"tx queue stopped: {reason}");
        }
        if (used && tx.DriverWantsInterrupt)
        {
            signalTx();
        }
        ProcessRx();
    }

    /// <summary>Fills as many RX buffers as the backend has packets for.</summary>
    public void ProcessRx()
    {
        bool used = false;
        while (backend.HasRxWork && rx.Pop() is { } chain)
        {
            if (!chain.IsValid || chain.WritableLength < VsockHeader.Size)
            {
                report($"rx buffer dropped: {chain.Error ?? $"only {chain.WritableLength} writable bytes"}");
                rx.AddUsed(chain.Head, 0);
                used = true;
                continue;
            }
            int room = (int)Math.Min(chain.WritableLength - VsockHeader.Size, VsockLimits.MaxPayload);
            VsockHeader? header = backend.TakeRxPacket(_payloadScratch.AsSpan(0, room), out int length);
            if (header is not { } h)
            {
                rx.Unpop();
                break;
            }
            h.Write(_headerScratch);
            chain.CopyToWritable(0, _headerScratch);
            chain.CopyToWritable(VsockHeader.Size, _payloadScratch.AsSpan(0, length));
            rx.AddUsed(chain.Head, (uint)(VsockHeader.Size + length));
            used = true;
        }
        if (rx.BrokenReason is { } reason)
        {
            report($"rx queue stopped: {reason}");
        }
        if (used && rx.DriverWantsInterrupt)
        {
            signalRx();
        }
    }
}
