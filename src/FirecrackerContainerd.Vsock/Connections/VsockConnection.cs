using FirecrackerContainerd.Vsock.Packet;

namespace FirecrackerContainerd.Vsock.Connections;

/// <summary>Identifies a stream: the host-side port and the guest-side port.</summary>
internal readonly record struct ConnectionKey(uint LocalPort, uint PeerPort);

/// <summary>Where a connection is in its life.</summary>
internal enum ConnectionState
{
    /// <summary>Host-initiated: REQUEST queued or sent, waiting for the guest's RESPONSE.</summary>
    LocalInit,
    /// <summary>Guest-initiated: the host Unix socket is being dialled.</summary>
    PeerInit,
    /// <summary>Both ends connected; data flows.</summary>
    Established,
    /// <summary>An RST is queued or sent; the connection is gone once it leaves.</summary>
    Killed,
}

/// <summary>What the muxer must do after the connection took a guest packet.</summary>
internal enum GuestPacketOutcome
{
    /// <summary>Nothing beyond bookkeeping (the packet may carry data for the host).</summary>
    Accepted,
    /// <summary>The guest accepted a host-initiated connection: tell the host (OK line) and start moving data.</summary>
    Established,
    /// <summary>The guest announced shutdown flags; see <see cref="VsockConnection.PeerShutdown"/>.</summary>
    PeerShutdown,
    /// <summary>The guest reset the connection: drop it without answering.</summary>
    PeerReset,
    /// <summary>The guest broke the protocol or its credit: reset the connection.</summary>
    Violation,
}

/// <summary>One vsock stream between a guest port and a host Unix socket: its state machine and its
/// credit-based flow control in both directions. Pure bookkeeping, no I/O: the muxer feeds it guest
/// packets and host bytes, and asks it for the next packet to put on the guest's RX queue. Callers
/// serialise access (the device lock).</summary>
internal sealed class VsockConnection
{
    /// <summary>Our receive buffer for guest→host bytes, advertised as buf_alloc. 256 KiB matches the
    /// Linux guest's default and keeps an emulated guest streaming while the host drains.</summary>
    public const uint BufAlloc = 256 * 1024;

    /// <summary>Host→guest bytes staged here until the guest has credit and RX buffers.</summary>
    public const int HostBufferCapacity = 64 * 1024;

    private readonly ulong _guestCid;
    private readonly byte[] _hostData = new byte[HostBufferCapacity];
    private int _hostStart;
    private int _hostCount;

    // Guest→host accounting: bytes received from the guest, bytes forwarded to the host socket, and
    // the fwd_cnt last told to the guest.
    private uint _rxCnt;
    private uint _fwdCnt;
    private uint _lastFwdCntSent;

    // Host→guest accounting: bytes sent to the guest and the guest's latest buf_alloc/fwd_cnt.
    private uint _txCnt;
    private uint _peerBufAlloc;
    private uint _peerFwdCnt;

    private bool _pendingRequest;
    private bool _pendingResponse;
    private bool _pendingRst;
    private bool _pendingCreditUpdate;
    private bool _creditRequestSent;
    private bool _pendingShutdown;
    private bool _shutdownSent;

    private VsockConnection(ConnectionKey key, ulong guestCid, ConnectionState state)
    {
        Key = key;
        _guestCid = guestCid;
        State = state;
    }

    /// <summary>A connection the host asked for: a REQUEST to the guest port is queued.</summary>
    public static VsockConnection HostInitiated(ConnectionKey key, ulong guestCid) =>
        new(key, guestCid, ConnectionState.LocalInit) { _pendingRequest = true };

    /// <summary>A connection the guest asked for with <paramref name="request"/>; it is answered once
    /// the host socket is dialled (<see cref="AcceptPeer"/>).</summary>
    public static VsockConnection GuestInitiated(ConnectionKey key, ulong guestCid, VsockHeader request)
    {
        var connection = new VsockConnection(key, guestCid, ConnectionState.PeerInit);
        connection.UpdatePeerCredit(request);
        return connection;
    }

    public ConnectionKey Key { get; }

    public ConnectionState State { get; private set; }

    /// <summary>Shutdown flags the guest has announced so far (they accumulate).</summary>
    public VsockShutdownFlags PeerShutdown { get; private set; }

    /// <summary>True once the host end reached end of file.</summary>
    public bool HostEof => _pendingShutdown || _shutdownSent;

    /// <summary>Bytes the guest may still accept from us: peer_buf_alloc - (tx_cnt - peer_fwd_cnt).</summary>
    public uint PeerCredit
    {
        get
        {
            uint inFlight = unchecked(_txCnt - _peerFwdCnt);
            return inFlight > _peerBufAlloc ? 0 : _peerBufAlloc - inFlight;
        }
    }

    /// <summary>Room left for host→guest bytes.</summary>
    public int HostBufferFree => HostBufferCapacity - _hostCount;

    /// <summary>Bytes received from the guest and not yet written to the host.</summary>
    public uint PendingForHost => unchecked(_rxCnt - _fwdCnt);

    public uint TxCount => _txCnt;

    public uint FwdCount => _fwdCnt;

    /// <summary>True when the connection has a packet for the guest's RX queue right now.</summary>
    public bool HasRxWork =>
        _pendingRst || _pendingRequest || _pendingResponse
        || (State == ConnectionState.Established && _hostCount > 0 && PeerCredit > 0)
        || _pendingCreditUpdate
        || (State == ConnectionState.Established && _hostCount > 0 && PeerCredit == 0 && !_creditRequestSent)
        || (_pendingShutdown && _hostCount == 0);

    /// <summary>Takes a packet the guest sent on this connection.</summary>
    public GuestPacketOutcome OnGuestPacket(GuestPacket packet)
    {
        VsockHeader header = packet.Header;
        if (State == ConnectionState.Killed)
        {
            return header.Op == VsockOp.Rst ? GuestPacketOutcome.PeerReset : GuestPacketOutcome.Accepted;
        }
        UpdatePeerCredit(header);
        switch (header.Op)
        {
            case VsockOp.Rst:
                State = ConnectionState.Killed;
                return GuestPacketOutcome.PeerReset;
            case VsockOp.Response when State == ConnectionState.LocalInit && !_pendingRequest:
                State = ConnectionState.Established;
                return GuestPacketOutcome.Established;
            case VsockOp.Rw when State == ConnectionState.Established && (PeerShutdown & VsockShutdownFlags.Send) == 0:
                uint length = (uint)packet.Payload.Length;
                if ((ulong)PendingForHost + length > BufAlloc)
                {
                    return Kill();
                }
                _rxCnt = unchecked(_rxCnt + length);
                return GuestPacketOutcome.Accepted;
            case VsockOp.CreditUpdate:
                return GuestPacketOutcome.Accepted;
            case VsockOp.CreditRequest:
                _pendingCreditUpdate = true;
                return GuestPacketOutcome.Accepted;
            case VsockOp.Shutdown when State == ConnectionState.Established:
                PeerShutdown |= packet.ShutdownFlags;
                return GuestPacketOutcome.PeerShutdown;
            default:
                return Kill();
        }
    }

    /// <summary>The host Unix socket of a guest-initiated connection is connected: answer RESPONSE.</summary>
    public void AcceptPeer()
    {
        if (State == ConnectionState.PeerInit)
        {
            State = ConnectionState.Established;
            _pendingResponse = true;
        }
    }

    /// <summary>Resets the connection: an RST is queued for the guest.</summary>
    public GuestPacketOutcome Kill()
    {
        State = ConnectionState.Killed;
        _pendingRst = true;
        return GuestPacketOutcome.Violation;
    }

    /// <summary>Stages bytes read from the host socket; returns how many fit.</summary>
    public int AppendHostData(ReadOnlySpan<byte> data)
    {
        int count = Math.Min(data.Length, HostBufferFree);
        int tail = (_hostStart + _hostCount) % HostBufferCapacity;
        int first = Math.Min(count, HostBufferCapacity - tail);
        data[..first].CopyTo(_hostData.AsSpan(tail));
        data[first..count].CopyTo(_hostData);
        _hostCount += count;
        return count;
    }

    /// <summary>The host end reached end of file: once staged bytes are sent, tell the guest we send no more.</summary>
    public void OnHostEof() => _pendingShutdown = !_shutdownSent;

    /// <summary>Bytes the guest sent were written to the host socket: they count as consumed, and the
    /// guest hears about it before it runs out of credit.</summary>
    public void OnHostWritten(int count)
    {
        _fwdCnt = unchecked(_fwdCnt + (uint)count);
        uint guestViewOfFree = BufAlloc - Math.Min(BufAlloc, unchecked(_rxCnt - _lastFwdCntSent));
        if (_fwdCnt != _lastFwdCntSent && guestViewOfFree < BufAlloc / 2)
        {
            _pendingCreditUpdate = true;
        }
    }

    /// <summary>Writes the next packet for the guest: its header, and its payload into
    /// <paramref name="payload"/> (at most its length). Returns null when there is nothing to send.</summary>
    public VsockHeader? TakeRxPacket(Span<byte> payload, out int payloadLength)
    {
        payloadLength = 0;
        if (_pendingRst)
        {
            _pendingRst = false;
            return Header(VsockOp.Rst, 0, 0);
        }
        if (_pendingRequest)
        {
            _pendingRequest = false;
            return Header(VsockOp.Request, 0, 0);
        }
        if (_pendingResponse)
        {
            _pendingResponse = false;
            return Header(VsockOp.Response, 0, 0);
        }
        if (State == ConnectionState.Established && _hostCount > 0)
        {
            uint credit = PeerCredit;
            if (credit > 0 && payload.Length > 0)
            {
                int count = (int)Math.Min(Math.Min((uint)_hostCount, credit), Math.Min((uint)payload.Length, VsockLimits.MaxPayload));
                int first = Math.Min(count, HostBufferCapacity - _hostStart);
                _hostData.AsSpan(_hostStart, first).CopyTo(payload);
                _hostData.AsSpan(0, count - first).CopyTo(payload[first..]);
                _hostStart = (_hostStart + count) % HostBufferCapacity;
                _hostCount -= count;
                _txCnt = unchecked(_txCnt + (uint)count);
                payloadLength = count;
                return Header(VsockOp.Rw, (uint)count, 0);
            }
            if (credit == 0 && !_creditRequestSent)
            {
                _creditRequestSent = true;
                return Header(VsockOp.CreditRequest, 0, 0);
            }
        }
        if (_pendingCreditUpdate)
        {
            return Header(VsockOp.CreditUpdate, 0, 0);
        }
        if (_pendingShutdown && _hostCount == 0)
        {
            _pendingShutdown = false;
            _shutdownSent = true;
            return Header(VsockOp.Shutdown, 0, (uint)VsockShutdownFlags.Send);
        }
        return null;
    }

    private VsockHeader Header(VsockOp op, uint length, uint flags)
    {
        // Every packet tells the guest how much we have consumed, so any of them is a credit update.
        _lastFwdCntSent = _fwdCnt;
        _pendingCreditUpdate = false;
        return new VsockHeader(VsockLimits.HostCid, _guestCid, Key.LocalPort, Key.PeerPort, length,
            VsockHeader.TypeStream, op, flags, BufAlloc, _fwdCnt);
    }

    private void UpdatePeerCredit(VsockHeader header)
    {
        _peerBufAlloc = header.BufAlloc;
        _peerFwdCnt = header.FwdCnt;
        if (PeerCredit > 0)
        {
            _creditRequestSent = false;
        }
    }
}
