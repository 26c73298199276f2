using System.Text.Json;

namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>The microVM metadata service: which version it speaks, where it answers and what it starts with.</summary>
/// <param name="Version">Protocol version; V2 requires session tokens and is the safer default.</param>
/// <param name="Ipv4Address">Link-local address the guest queries, or null for 169.254.169.254.</param>
/// <param name="InitialMetadata">A JSON object stored before boot, or null for an empty store.</param>
/// <remarks>The interfaces that serve it are the ones with <see cref="NetworkInterface.AllowMmds"/> set.</remarks>
public sealed record MmdsConfig(MmdsVersion Version = MmdsVersion.V2, string? Ipv4Address = null, JsonElement? InitialMetadata = null);

/// <summary>The metadata service protocol version.</summary>
public enum MmdsVersion
{
    /// <summary>Plain GET requests (IMDSv1 style).</summary>
    V1,

    /// <summary>Session-token protected requests (IMDSv2 style).</summary>
    V2,
}
