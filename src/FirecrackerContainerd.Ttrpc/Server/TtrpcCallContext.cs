using FirecrackerContainerd.Ttrpc.Transport;

namespace FirecrackerContainerd.Ttrpc.Server;

/// <summary>What a handler knows about the call it serves: the method, metadata, peer and cancellation.</summary>
/// <param name="Service">The service name from the request.</param>
/// <param name="Method">The method name from the request.</param>
/// <param name="StreamId">The stream id of the request.</param>
/// <param name="Metadata">The request metadata (keys lower-cased).</param>
/// <param name="Peer">The peer's credentials when the transport is a Unix socket, else null.</param>
/// <param name="CancellationToken">Cancelled at the request's deadline, when the connection closes, or when the server stops hard.</param>
public sealed record TtrpcCallContext(
    string Service,
    string Method,
    uint StreamId,
    TtrpcMetadata Metadata,
    PeerCredentials? Peer,
    CancellationToken CancellationToken);
