namespace FirecrackerContainerd.Ttrpc.Framing;

/// <summary>The message type carried in byte 8 of a frame header.</summary>
internal enum FrameType : byte
{
    /// <summary>Starts a stream; its body is a <c>ttrpc.Request</c>.</summary>
    Request = 0x01,

    /// <summary>Ends a stream; its body is a <c>ttrpc.Response</c>.</summary>
    Response = 0x02,

    /// <summary>Stream data on an already started stream (ttrpc 1.2 and later).</summary>
    Data = 0x03,
}
