using System.Buffers.Binary;
using FirecrackerContainerd.Native;
using FirecrackerContainerd.Vsock.Packet;
using FirecrackerContainerd.Vsock.Virtio;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Vsock.VhostUser;

/// <summary>The back-end side of one vhost-user connection for a vsock device: negotiates features,
/// maps guest memory, collects the vring configuration and starts the virtio queues once RX and TX
/// are fully described.</summary>
internal sealed partial class VhostUserSession : IDisposable
{
    /// <summary>RX, TX and event queues.</summary>
    public const int QueueCount = 3;

    private const int RxQueue = 0;
    private const int TxQueue = 1;

    /// <summary>VIRTIO_F_VERSION_1 (modern device) and the vhost-user protocol-features bit.</summary>
    public const ulong OfferedFeatures = (1ul << 32) | (1ul << VhostUserProtocol.FeatureProtocolFeatures);

    public const ulong OfferedProtocolFeatures =
        (1ul << VhostUserProtocol.ProtocolFeatureConfig) | (1ul << VhostUserProtocol.ProtocolFeatureReplyAck);

    private readonly VhostUserChannel _channel;
    private readonly ulong _guestCid;
    private readonly object _gate;
    private readonly IVsockBackend _backend;
    private readonly Action _onActivated;
    private readonly Action _onDeactivated;
    private readonly ILogger _logger;
    private readonly VringConfig[] _vrings = [new(), new(), new()];
    private ulong _protocolFeatures;
    private GuestMemory? _memory;
    private VirtioVsockQueues? _queues;
    private KickWatcher? _rxKick;
    private KickWatcher? _txKick;
    // The rings as they were when the front-end stopped them (GET_VRING_BASE), while it has not restarted them.
    private RingPosition[]? _suspended;

    public VhostUserSession(VhostUserChannel channel, ulong guestCid, object gate, IVsockBackend backend,
        Action onActivated, Action onDeactivated, ILogger logger)
    {
        _channel = channel;
        _guestCid = guestCid;
        _gate = gate;
        _backend = backend;
        _onActivated = onActivated;
        _onDeactivated = onDeactivated;
        _logger = logger;
    }

    /// <summary>The running queues, or null while the device is stopped. Read under the device lock.</summary>
    public VirtioVsockQueues? Queues => _queues;

    /// <summary>Serves messages until the front-end disconnects.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (await _channel.ReadAsync(cancellationToken).ConfigureAwait(false) is { } message)
        {
            LogMessage(message.Request, message.Payload.Length, message.Fds.Length);
            await HandleAsync(message, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task HandleAsync(VhostUserMessage message, CancellationToken cancellationToken)
    {
        bool replied = false;
        switch (message.Request)
        {
            case VhostUserRequest.GetFeatures:
                await _channel.ReplyU64Async(message.Request, OfferedFeatures, cancellationToken).ConfigureAwait(false);
                replied = true;
                break;
            case VhostUserRequest.SetFeatures:
                ulong features = message.ReadU64();
                if ((features & ~OfferedFeatures) != 0)
                {
                    throw new VhostUserProtocolException($"SET_FEATURES: front-end acked features 0x{features:x} beyond the offered 0x{OfferedFeatures:x}");
                }
                break;
            case VhostUserRequest.GetProtocolFeatures:
                await _channel.ReplyU64Async(message.Request, OfferedProtocolFeatures, cancellationToken).ConfigureAwait(false);
                replied = true;
                break;
            case VhostUserRequest.SetProtocolFeatures:
                _protocolFeatures = message.ReadU64() & OfferedProtocolFeatures;
                break;
            case VhostUserRequest.SetOwner:
                break;
            case VhostUserRequest.ResetOwner:
            case VhostUserRequest.ResetDevice:
                Stop(keepConnections: false);
                break;
            case VhostUserRequest.SetMemTable:
                SetMemTable(message);
                break;
            case VhostUserRequest.SetVringNum:
                {
                    (uint index, uint num) = message.ReadVringState();
                    Vring(index).Num = num;
                    break;
                }
            case VhostUserRequest.SetVringAddr:
                SetVringAddr(message);
                break;
            case VhostUserRequest.SetVringBase:
                {
                    (uint index, uint num) = message.ReadVringState();
                    Vring(index).Base = (ushort)num;
                    break;
                }
            case VhostUserRequest.GetVringBase:
                {
                    (uint index, _) = message.ReadVringState();
                    ushort next = StopRing(index);
                    byte[] state = new byte[8];
                    BinaryPrimitives.WriteUInt32LittleEndian(state, index);
                    BinaryPrimitives.WriteUInt32LittleEndian(state.AsSpan(4), next);
                    await _channel.ReplyAsync(message.Request, state, cancellationToken).ConfigureAwait(false);
                    replied = true;
                    break;
                }
            case VhostUserRequest.SetVringKick:
            case VhostUserRequest.SetVringCall:
            case VhostUserRequest.SetVringErr:
                SetVringFile(message);
                break;
            case VhostUserRequest.SetVringEnable:
                {
                    (uint index, uint enable) = message.ReadVringState();
                    Vring(index).Enabled = enable != 0;
                    break;
                }
            case VhostUserRequest.GetConfig:
                await _channel.ReplyAsync(message.Request, ReadConfig(message), cancellationToken).ConfigureAwait(false);
                replied = true;
                break;
            case VhostUserRequest.GetQueueNum:
                await _channel.ReplyU64Async(message.Request, QueueCount, cancellationToken).ConfigureAwait(false);
                replied = true;
                break;
            case VhostUserRequest.GetMaxMemSlots:
                await _channel.ReplyU64Async(message.Request, VhostUserProtocol.MaxMemoryRegions, cancellationToken).ConfigureAwait(false);
                replied = true;
                break;
            default:
                // Config writes (the CID is read-only), dirty logging and anything not negotiated.
                LogIgnored(message.Request);
                break;
        }
        foreach (int fd in message.Fds.Where(fd => fd >= 0))
        {
            Libc.CloseQuietly(fd);
        }
        if (!replied && message.NeedsReply && (_protocolFeatures & (1ul << VhostUserProtocol.ProtocolFeatureReplyAck)) != 0)
        {
            await _channel.ReplyU64Async(message.Request, 0, cancellationToken).ConfigureAwait(false);
        }
    }

    private VringConfig Vring(uint index) =>
        index < QueueCount ? _vrings[index] : throw new VhostUserProtocolException($"queue index {index} out of range (device has {QueueCount})");

    private byte[] ReadConfig(VhostUserMessage message)
    {
        // offset u32, size u32, flags u32, then size bytes of config space.
        if (message.Payload.Length < 12)
        {
            throw new VhostUserProtocolException($"GET_CONFIG: payload of {message.Payload.Length} bytes");
        }
        uint offset = BinaryPrimitives.ReadUInt32LittleEndian(message.Payload);
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(message.Payload.AsSpan(4));
        if (size > VhostUserProtocol.MaxConfigSize || message.Payload.Length != 12 + size)
        {
            throw new VhostUserProtocolException($"GET_CONFIG: size {size} with a payload of {message.Payload.Length} bytes");
        }
        byte[] reply = (byte[])message.Payload.Clone();
        Span<byte> config = stackalloc byte[8];
        // virtio_vsock_config: guest_cid le64.
        BinaryPrimitives.WriteUInt64LittleEndian(config, _guestCid);
        for (uint i = 0; i < size; i++)
        {
            ulong position = (ulong)offset + i;
            reply[12 + i] = position < 8 ? config[(int)position] : (byte)0;
        }
        return reply;
    }

    private void SetMemTable(VhostUserMessage message)
    {
        byte[] p = message.Payload;
        if (p.Length < 8)
        {
            throw new VhostUserProtocolException($"SET_MEM_TABLE: payload of {p.Length} bytes");
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(p);
        if (count == 0 || count > VhostUserProtocol.MaxMemoryRegions || p.Length != 8 + (count * VhostUserProtocol.MemoryRegionSize)
            || message.Fds.Length != count)
        {
            throw new VhostUserProtocolException($"SET_MEM_TABLE: {count} regions, {p.Length} bytes, {message.Fds.Length} descriptors");
        }
        var regions = new List<GuestMemoryRegion>();
        var mappings = new List<(nint Address, ulong Length)>();
        try
        {
            for (int i = 0; i < count; i++)
            {
                ReadOnlySpan<byte> r = p.AsSpan(8 + (i * VhostUserProtocol.MemoryRegionSize));
                ulong guestAddress = BinaryPrimitives.ReadUInt64LittleEndian(r);
                ulong size = BinaryPrimitives.ReadUInt64LittleEndian(r[8..]);
                ulong userAddress = BinaryPrimitives.ReadUInt64LittleEndian(r[16..]);
                ulong mmapOffset = BinaryPrimitives.ReadUInt64LittleEndian(r[24..]);
                if (size == 0 || mmapOffset > long.MaxValue - size || guestAddress > ulong.MaxValue - size || userAddress > ulong.MaxValue - size)
                {
                    throw new VhostUserProtocolException($"SET_MEM_TABLE: region {i} (guest 0x{guestAddress:x}, size 0x{size:x}, offset 0x{mmapOffset:x}) is impossible");
                }
                ulong length = size + mmapOffset;
                nint address = Interop.MapShared(message.Fds[i], length, $"guest memory region {i} (0x{guestAddress:x}, {size} bytes)");
                mappings.Add((address, length));
                regions.Add(new GuestMemoryRegion(guestAddress, size, userAddress, address + (nint)mmapOffset));
            }
        }
        catch
        {
            Unmap(mappings);
            throw;
        }
        Stop(keepConnections: true);
        lock (_gate)
        {
            _memory?.Dispose();
            _memory = new GuestMemory(regions, () => Unmap(mappings));
        }
        TryStart();
    }

    private static void Unmap(List<(nint Address, ulong Length)> mappings)
    {
        foreach ((nint address, ulong length) in mappings)
        {
            _ = Interop.Munmap(address, (nuint)length);
        }
    }

    private void SetVringAddr(VhostUserMessage message)
    {
        // index u32, flags u32, descriptor u64, used u64, available u64, log u64.
        message.RequireSize(40);
        VringConfig vring = Vring(BinaryPrimitives.ReadUInt32LittleEndian(message.Payload));
        vring.DescUser = BinaryPrimitives.ReadUInt64LittleEndian(message.Payload.AsSpan(8));
        vring.UsedUser = BinaryPrimitives.ReadUInt64LittleEndian(message.Payload.AsSpan(16));
        vring.AvailUser = BinaryPrimitives.ReadUInt64LittleEndian(message.Payload.AsSpan(24));
        vring.HasAddresses = true;
    }

    private void SetVringFile(VhostUserMessage message)
    {
        ulong value = message.ReadU64();
        uint index = (uint)(value & VhostUserProtocol.VringIndexMask);
        VringConfig vring = Vring(index);
        bool noFd = (value & VhostUserProtocol.VringNoFdMask) != 0;
        if (!noFd && message.Fds.Length != 1)
        {
            throw new VhostUserProtocolException($"{message.Request}: expected one descriptor, got {message.Fds.Length}");
        }
        int fd = noFd ? -1 : message.Fds[0];
        if (fd >= 0)
        {
            // Ownership moves to the vring; keep HandleAsync from closing it.
            message.Fds[0] = -1;
        }
        switch (message.Request)
        {
            case VhostUserRequest.SetVringKick:
                if (index is RxQueue or TxQueue)
                {
                    Stop(keepConnections: true);
                }
                Libc.CloseQuietly(vring.KickFd);
                vring.KickFd = fd;
                TryStart();
                break;
            case VhostUserRequest.SetVringCall:
                lock (_gate)
                {
                    vring.Call?.Dispose();
                    vring.Call = fd >= 0 ? new CallNotifier(fd) : null;
                }
                break;
            default:
                Libc.CloseQuietly(fd);
                break;
        }
    }

    private void TryStart()
    {
        VringConfig rxConfig = _vrings[RxQueue];
        VringConfig txConfig = _vrings[TxQueue];
        bool resetFirst = false;
        lock (_gate)
        {
            if (_queues is not null || _memory is null || !rxConfig.Ready || !txConfig.Ready)
            {
                return;
            }
            VirtqueueLayout? rxLayout = VirtqueueLayout.Create(_memory, rxConfig.Num, rxConfig.DescUser, rxConfig.AvailUser, rxConfig.UsedUser);
            VirtqueueLayout? txLayout = VirtqueueLayout.Create(_memory, txConfig.Num, txConfig.DescUser, txConfig.AvailUser, txConfig.UsedUser);
            if (rxLayout is null || txLayout is null)
            {
                throw new VhostUserProtocolException($"vring addresses or sizes (rx {rxConfig.Num}, tx {txConfig.Num}) are outside guest memory or invalid");
            }
            // Rings that start where they stopped are a resumed VM: its connections carry on. Rings anywhere else
            // belong to a guest that reset the device, whose connections are gone.
            if (_suspended is { } before && !(before[0] == RingPosition.Of(rxConfig) && before[1] == RingPosition.Of(txConfig)))
            {
                resetFirst = true;
            }

            _suspended = null;
            _queues = new VirtioVsockQueues(
                new SplitVirtqueue(_memory, rxLayout.Value, rxConfig.Base),
                new SplitVirtqueue(_memory, txLayout.Value, txConfig.Base),
                new VsockPacketValidator(_guestCid),
                _backend,
                () => rxConfig.Call?.Signal(),
                () => txConfig.Call?.Signal(),
                LogQueueProblem);
        }
        _rxKick = new KickWatcher(rxConfig.KickFd, "vsock-rx-kick", () => OnKick(RxQueue));
        _txKick = new KickWatcher(txConfig.KickFd, "vsock-tx-kick", () => OnKick(TxQueue));
        LogStarted(_guestCid, rxConfig.Num, txConfig.Num);
        if (resetFirst)
        {
            _onDeactivated();
        }

        _onActivated();
        OnKick(TxQueue);
        // What the host sent while the rings were stopped waits for the guest.
        OnKick(RxQueue);
    }

    private void OnKick(int queue)
    {
        try
        {
            lock (_gate)
            {
                if (queue == TxQueue)
                {
                    _queues?.ProcessTx();
                }
                else
                {
                    _queues?.ProcessRx();
                }
            }
        }
#pragma warning disable CA1031 // A fault in one packet must not take the device (and every connection) down.
        catch (Exception e)
#pragma warning restore CA1031
        {
            LogKickFailed(e, queue);
        }
    }

    /// <summary>Stops the queues if <paramref name="index"/> is one of them; returns the ring's next index.</summary>
    private ushort StopRing(uint index)
    {
        VringConfig vring = Vring(index);
        ushort next = vring.Base;
        lock (_gate)
        {
            if (_queues is not null && index is RxQueue or TxQueue)
            {
                next = index == RxQueue ? _queues.Rx.NextAvail : _queues.Tx.NextAvail;
            }
        }
        if (index is RxQueue or TxQueue)
        {
            // QEMU stops the rings this way when the VM is paused as well as when the guest resets the device;
            // which one it was shows when the rings start again (TryStart).
            Stop(keepConnections: true);
            vring.Base = next;
            // A restart brings a new kick descriptor.
            Libc.CloseQuietly(vring.KickFd);
            vring.KickFd = -1;
        }
        return next;
    }

    /// <summary>
    /// Stops the queues. With <paramref name="keepConnections"/>, the connections stay (a paused VM resumes them)
    /// until the rings start again somewhere else; otherwise they are reset now.
    /// </summary>
    private void Stop(bool keepConnections)
    {
        bool wasRunning;
        bool reset;
        lock (_gate)
        {
            wasRunning = _queues is not null;
            if (wasRunning)
            {
                _vrings[RxQueue].Base = _queues!.Rx.NextAvail;
                _vrings[TxQueue].Base = _queues.Tx.NextAvail;
            }
            _queues = null;
            reset = (wasRunning || _suspended is not null) && !keepConnections;
            if (wasRunning && keepConnections)
            {
                _suspended = [RingPosition.Of(_vrings[RxQueue]), RingPosition.Of(_vrings[TxQueue])];
            }
            else if (reset)
            {
                _suspended = null;
            }
        }
        // Joined outside the lock: a watcher may be waiting for it.
        _rxKick?.Dispose();
        _txKick?.Dispose();
        _rxKick = null;
        _txKick = null;
        if (reset)
        {
            _onDeactivated();
        }
    }

    public void Dispose()
    {
        Stop(keepConnections: false);
        lock (_gate)
        {
            foreach (VringConfig vring in _vrings)
            {
                Libc.CloseQuietly(vring.KickFd);
                vring.KickFd = -1;
                vring.Call?.Dispose();
                vring.Call = null;
            }
            _memory?.Dispose();
            _memory = null;
        }
    }

    private void LogQueueProblem(string problem) => LogGuestFault(problem);

    /// <summary>What the front-end told us about one vring.</summary>
    /// <summary>Where a ring is in guest memory and how far the device got in it.</summary>
    private readonly record struct RingPosition(uint Num, ulong DescUser, ulong AvailUser, ulong UsedUser, ushort Base)
    {
        public static RingPosition Of(VringConfig vring) => new(vring.Num, vring.DescUser, vring.AvailUser, vring.UsedUser, vring.Base);
    }

    private sealed class VringConfig
    {
        public uint Num { get; set; }
        public ulong DescUser { get; set; }
        public ulong AvailUser { get; set; }
        public ulong UsedUser { get; set; }
        public bool HasAddresses { get; set; }
        public ushort Base { get; set; }
        public int KickFd { get; set; } = -1;
        public CallNotifier? Call { get; set; }
        public bool Enabled { get; set; }
        public bool Ready => Num > 0 && HasAddresses && KickFd >= 0;
    }

    [LoggerMessage(Level = LogLevel.Trace, Message = "vhost-user {Request}: {Size} bytes, {Fds} descriptors")]
    private partial void LogMessage(VhostUserRequest request, int size, int fds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "vhost-user {Request} ignored")]
    private partial void LogIgnored(VhostUserRequest request);

    [LoggerMessage(Level = LogLevel.Information, Message = "vsock device started: guest cid {GuestCid}, rx queue {RxSize}, tx queue {TxSize}")]
    private partial void LogStarted(ulong guestCid, uint rxSize, uint txSize);

    [LoggerMessage(Level = LogLevel.Warning, Message = "guest fault: {Problem}")]
    private partial void LogGuestFault(string problem);

    [LoggerMessage(Level = LogLevel.Error, Message = "processing queue {Queue} failed")]
    private partial void LogKickFailed(Exception exception, int queue);
}
