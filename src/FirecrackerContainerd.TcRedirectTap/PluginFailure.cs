using FirecrackerContainerd.Network.Cni;

namespace FirecrackerContainerd.TcRedirectTap;

/// <summary>A failure the plugin reports as a CNI error result with <see cref="Error"/>'s code.</summary>
internal sealed class PluginFailure : Exception
{
    public PluginFailure(int code, string message, string? details = null)
        : base(message)
    {
        Error = new CniError(code, message, details);
    }

    public CniError Error { get; }
}
