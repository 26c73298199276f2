using System.Buffers.Binary;

namespace FirecrackerContainerd.Vsock.VhostUser;

/// <summary>Front-end request codes of the vhost-user protocol (QEMU's docs/interop/vhost-user.rst).</summary>
internal enum VhostUserRequest : uint
{
    GetFeatures = 1,
    SetFeatures = 2,
    SetOwner = 3,
    ResetOwner = 4,
    SetMemTable = 5,
    SetLogBase = 6,
    SetLogFd = 7,
    SetVringNum = 8,
    SetVringAddr = 9,
    SetVringBase = 10,
    GetVringBase = 11,
    SetVringKick = 12,
    SetVringCall = 13,
    SetVringErr = 14,
    GetProtocolFeatures = 15,
    SetProtocolFeatures = 16,
    GetQueueNum = 17,
    SetVringEnable = 18,
    GetConfig = 24,
    SetConfig = 25,
    ResetDevice = 34,
    GetMaxMemSlots = 36,
    SetStatus = 39,
    GetStatus = 40,
}

/// <summary>Protocol constants: header layout, flags and feature bits.</summary>
internal static class VhostUserProtocol
{
    /// <summary>request u32, flags u32, size u32.</summary>
    public const int HeaderSize = 12;

    /// <summary>Low two bits of flags carry the protocol version, which is 1.</summary>
    public const uint VersionMask = 0x3;
    public const uint Version = 0x1;

    /// <summary>Flags bit 2: the message is a reply.</summary>
    public const uint FlagReply = 1u << 2;

    /// <summary>Flags bit 3: the front-end wants an acknowledgement (REPLY_ACK).</summary>
    public const uint FlagNeedReply = 1u << 3;

    /// <summary>No message we accept is larger; the biggest is GET_CONFIG with 256 bytes of config.</summary>
    public const int MaxPayloadSize = 4096;

    /// <summary>Most file descriptors one message may carry (the memory table's 8 regions).</summary>
    public const int MaxFds = 8;

    /// <summary>Virtio feature bit: the device offers vhost-user protocol features.</summary>
    public const int FeatureProtocolFeatures = 30;

    /// <summary>Protocol feature bit: REPLY_ACK (need_reply flag honoured).</summary>
    public const int ProtocolFeatureReplyAck = 3;

    /// <summary>Protocol feature bit: GET_CONFIG/SET_CONFIG (QEMU needs it to learn the guest CID).</summary>
    public const int ProtocolFeatureConfig = 9;

    /// <summary>SET_VRING_KICK/CALL/ERR payload: bits 0-7 are the queue index.</summary>
    public const ulong VringIndexMask = 0xff;

    /// <summary>SET_VRING_KICK/CALL/ERR payload bit 8: no file descriptor was sent.</summary>
    public const ulong VringNoFdMask = 1ul << 8;

    /// <summary>Largest config-space access (VHOST_USER_MAX_CONFIG_SIZE).</summary>
    public const uint MaxConfigSize = 256;

    /// <summary>Most memory regions in one SET_MEM_TABLE.</summary>
    public const int MaxMemoryRegions = 8;

    /// <summary>guest_addr u64, size u64, user_addr u64, mmap_offset u64.</summary>
    public const int MemoryRegionSize = 32;
}

/// <summary>One message from the front-end: header fields, payload and any file descriptors that came
/// with it (the receiver owns and must close them).</summary>
internal sealed record VhostUserMessage(VhostUserRequest Request, uint Flags, byte[] Payload, int[] Fds)
{
    public bool NeedsReply => (Flags & VhostUserProtocol.FlagNeedReply) != 0;

    /// <summary>The payload as a u64 (features, vring file messages), checking its size.</summary>
    public ulong ReadU64()
    {
        RequireSize(8);
        return BinaryPrimitives.ReadUInt64LittleEndian(Payload);
    }

    /// <summary>The payload as a vring state (index u32, num u32).</summary>
    public (uint Index, uint Num) ReadVringState()
    {
        RequireSize(8);
        return (BinaryPrimitives.ReadUInt32LittleEndian(Payload), BinaryPrimitives.ReadUInt32LittleEndian(Payload.AsSpan(4)));
    }

    /// <summary>Fails unless the payload has exactly <paramref name="size"/> bytes.</summary>
    public void RequireSize(int size)
    {
        if (Payload.Length != size)
        {
            throw new VhostUserProtocolException($"{Request}: payload of {Payload.Length} bytes, expected {size}");
        }
    }
}

/// <summary>The front-end sent something the protocol does not allow; the session ends.</summary>
public sealed class VhostUserProtocolException(string message) : Exception(message);
