namespace FirecrackerContainerd.Agent.Oci;

/// <summary>The OCI runtimes the guest image carries.</summary>
[Flags]
internal enum GuestRuntimes
{
    /// <summary>Neither runtime.</summary>
    None = 0,

    /// <summary>crun (the default).</summary>
    Crun = 1,

    /// <summary>runc.</summary>
    Runc = 2,

    /// <summary>Both runtimes.</summary>
    Both = Crun | Runc,
}

/// <summary>What kind of JSON a spec field holds.</summary>
internal enum SpecShapeKind
{
    /// <summary>A scalar, or anything whose inside the runtime checks itself.</summary>
    Value,

    /// <summary>An object with known fields.</summary>
    Object,

    /// <summary>An array of one shape.</summary>
    Array,

    /// <summary>An object with free keys and values of one shape.</summary>
    Map,
}

/// <summary>
/// One field of the OCI runtime spec as the guest knows it: its JSON kind, its children, which of the guest's
/// runtimes honour it, or why nothing in a VM can.
/// </summary>
internal sealed record SpecShape(
    SpecShapeKind Kind,
    IReadOnlyDictionary<string, SpecShape>? Fields = null,
    SpecShape? Element = null,
    GuestRuntimes HonouredBy = GuestRuntimes.Both,
    string? Refusal = null)
{
    /// <summary>A value both runtimes honour.</summary>
    public static SpecShape Value { get; } = new(SpecShapeKind.Value);

    /// <summary>An object with these fields.</summary>
    public static SpecShape Object(params (string Name, SpecShape Shape)[] fields) =>
        new(SpecShapeKind.Object, fields.ToDictionary(f => f.Name, f => f.Shape, StringComparer.Ordinal));

    /// <summary>An array of <paramref name="element"/>.</summary>
    public static SpecShape ArrayOf(SpecShape element) => new(SpecShapeKind.Array, Element: element);

    /// <summary>A map from free keys to <paramref name="element"/>.</summary>
    public static SpecShape MapOf(SpecShape element) => new(SpecShapeKind.Map, Element: element);

    /// <summary>A field that no runtime in a VM can honour, for <paramref name="reason"/>.</summary>
    public static SpecShape Refused(string reason) => new(SpecShapeKind.Value, HonouredBy: GuestRuntimes.None, Refusal: reason);

    /// <summary>This shape, honoured only by <paramref name="runtimes"/>.</summary>
    public SpecShape Only(GuestRuntimes runtimes) => this with { HonouredBy = runtimes };
}
