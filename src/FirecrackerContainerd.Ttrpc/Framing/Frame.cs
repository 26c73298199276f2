namespace FirecrackerContainerd.Ttrpc.Framing;

/// <summary>One received frame: its header and its body (empty for an oversized, discarded body).</summary>
/// <param name="Header">The decoded header; <see cref="FrameHeader.Length"/> is the length the peer announced.</param>
/// <param name="Payload">The body, or empty when <see cref="FrameHeader.IsOversized"/> and the body was discarded.</param>
internal sealed record Frame(FrameHeader Header, ReadOnlyMemory<byte> Payload);
