namespace FirecrackerContainerd.Ttrpc.Framing;

/// <summary>The flags carried in byte 9 of a frame header; their meaning depends on the frame type.</summary>
[Flags]
internal enum FrameFlagBits : byte
{
    /// <summary>A unary request, or a frame with no flags.</summary>
    None = 0,

    /// <summary>Request or Data: the sender will send no more data on this stream.</summary>
    RemoteClosed = 0x01,

    /// <summary>Request: the sender will keep sending Data frames on this stream.</summary>
    RemoteOpen = 0x02,

    /// <summary>Data: the frame carries no payload (a bare close).</summary>
    NoData = 0x04,
}
