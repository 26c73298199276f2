namespace FirecrackerContainerd.Ttrpc.Server;

/// <summary>Server settings.</summary>
public sealed record TtrpcServerOptions
{
    /// <summary>Default settings: no credential check.</summary>
    public static TtrpcServerOptions Default { get; } = new();

    /// <summary>
    /// Refuse Unix-socket peers whose effective uid/gid differ from ours (ttrpc's <c>UnixSocketRequireSameUser</c>),
    /// as they were when the server was created. Only applies to AF_UNIX connections.
    /// </summary>
    public bool RequireSameUser { get; init; }
}
