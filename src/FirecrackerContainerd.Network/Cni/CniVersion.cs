using System.Collections.Immutable;

namespace FirecrackerContainerd.Network.Cni;

/// <summary>The CNI specification versions this library speaks (those with chaining, up to 1.0.0) and what differs between them.</summary>
public static class CniVersion
{
    /// <summary>Every version this library and the plugin accept, oldest first.</summary>
    public static ImmutableArray<string> Supported { get; } = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

    /// <summary>The newest supported version.</summary>
    public const string Latest = "1.0.0";

    /// <summary>Whether <paramref name="version"/> is one of <see cref="Supported"/>.</summary>
    public static bool IsSupported(string? version) => version is not null && Supported.Contains(version);

    /// <summary>Whether a configuration of <paramref name="version"/> may be CHECKed (0.4.0 and later).</summary>
    public static bool AllowsCheck(string version) => AtLeast040(version);

    /// <summary>Whether DEL gets the ADD's result as <c>prevResult</c> (0.4.0 and later).</summary>
    public static bool PassesResultOnDelete(string version) => AtLeast040(version);

    /// <summary>Whether each IP of a result names its IP version (<c>"version": "4"</c>; before 1.0.0).</summary>
    public static bool HasIpVersionField(string version) => version is "0.3.0" or "0.3.1" or "0.4.0";

    private static bool AtLeast040(string version) => version is "0.4.0" or "1.0.0";
}
