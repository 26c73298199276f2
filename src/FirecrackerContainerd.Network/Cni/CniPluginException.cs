namespace FirecrackerContainerd.Network.Cni;

/// <summary>A CNI plugin that failed: its error result, or how it misbehaved (no result, a bad one, too slow, too much output).</summary>
public sealed class CniPluginException : Exception
{
    /// <summary>Creates the exception for <paramref name="plugin"/> running <paramref name="command"/>.</summary>
    /// <param name="plugin">The plugin's type (its executable's name).</param>
    /// <param name="command">The CNI command (ADD, DEL, CHECK, VERSION).</param>
    /// <param name="network">The network's name, or null for VERSION.</param>
    /// <param name="error">The plugin's error result, or null when it printed none.</param>
    /// <param name="problem">What went wrong when there is no error result (exit status, timeout, bad output).</param>
    /// <param name="stderr">The end of the plugin's stderr, or empty.</param>
    /// <param name="inner">The underlying failure, if any.</param>
    public CniPluginException(string plugin, string command, string? network, CniError? error, string? problem, string stderr, Exception? inner = null)
        : base(Format(plugin, command, network, error, problem, stderr), inner)
    {
        Plugin = plugin;
        Command = command;
        Error = error;
        Stderr = stderr;
    }

    /// <summary>The plugin's type.</summary>
    public string Plugin { get; }

    /// <summary>The CNI command it ran.</summary>
    public string Command { get; }

    /// <summary>The error result it printed, or null.</summary>
    public CniError? Error { get; }

    /// <summary>The end of its stderr.</summary>
    public string Stderr { get; }

    private static string Format(string plugin, string command, string? network, CniError? error, string? problem, string stderr)
    {
        string where = network is null ? $"CNI plugin {plugin} {command}" : $"CNI plugin {plugin} {command} (network {network})";
        string what = error is not null
            ? $"error {error.Code}: {error.Message}{(string.IsNullOrEmpty(error.Details) ? string.Empty : "; " + error.Details)}"
            : problem ?? "failed";
        string tail = string.IsNullOrWhiteSpace(stderr) ? string.Empty : $" (stderr: {stderr.Trim()})";
        return $"{where}: {what}{tail}";
    }
}
