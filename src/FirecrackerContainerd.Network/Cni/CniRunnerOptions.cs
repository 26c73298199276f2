namespace FirecrackerContainerd.Network.Cni;

/// <summary>Where a <see cref="CniRunner"/> finds plugins and how long it lets them run.</summary>
/// <param name="PluginDirectories">The directories searched for plugin executables, in order; also the plugins' <c>CNI_PATH</c>.</param>
/// <param name="Timeout">How long one plugin may run before it is killed (null: <see cref="DefaultTimeout"/>).</param>
/// <param name="RuntimeNetworkNamespace">
/// The network namespace the plugins run in: the runtime's networking domain, where a bridge plugin makes its bridge
/// and a firewall plugin its rules. Null runs them in the caller's own namespace.
/// </param>
public sealed record CniRunnerOptions(IReadOnlyList<string> PluginDirectories, TimeSpan? Timeout = null, string? RuntimeNetworkNamespace = null)
{
    /// <summary>A plugin that has not finished in this long is stuck (the reference plugins take well under a second).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The most a plugin may print on stdout; a result is a few KiB.</summary>
    public const int MaxOutputBytes = 1 << 20;

    /// <summary>How much of a plugin's stderr is kept for error messages (the end of it).</summary>
    public const int MaxStderrChars = 4096;
}
