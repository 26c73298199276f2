namespace FirecrackerContainerd.Ttrpc.Client;

/// <summary>Per-call settings: a timeout (sent to the server as timeout_nano) and metadata.</summary>
public sealed record TtrpcCallOptions
{
    /// <summary>No timeout, no metadata.</summary>
    public static TtrpcCallOptions Default { get; } = new();

    /// <summary>Time the call may take; null means no deadline.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Metadata sent with the request.</summary>
    public TtrpcMetadata Metadata { get; init; } = TtrpcMetadata.Empty;
}
