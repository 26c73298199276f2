using System.Text.Json;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Control.Shims;

/// <summary>
/// The bundle directory the daemon makes for a VM it creates, <c>&lt;state&gt;/&lt;ns&gt;/&lt;vm&gt;</c>: the shim's working
/// directory for <c>start</c>, holding a minimal <c>config.json</c> whose annotation names the VM. It also records which
/// VMs this daemon created.
/// </summary>
/// <param name="RootPath">The directory.</param>
public readonly record struct VmBundle(string RootPath)
{
    /// <summary>The bundle of (<paramref name="ns"/>, <paramref name="vmId"/>) under <paramref name="stateDir"/>; the ids must be validated.</summary>
    public static VmBundle For(string stateDir, string ns, string vmId) => new(Path.Combine(stateDir, ns, vmId));

    /// <summary>The OCI config file the shim reads the VM id annotation from.</summary>
    public string ConfigPath => Path.Combine(RootPath, WellKnownNames.OciConfigName);

    /// <summary>Creates the directory (0700) and writes <c>config.json</c> with the <c>aws.firecracker.vm.id</c> annotation.</summary>
    /// <exception cref="IOException">The directory or the file could not be written; the message names the path.</exception>
    public void Create(string vmId)
    {
        try
        {
            Directory.CreateDirectory(RootPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var config = new Dictionary<string, object>
            {
                ["ociVersion"] = "1.0.2",
                ["annotations"] = new Dictionary<string, string> { [WellKnownNames.VmIdAnnotation] = vmId },
            };
            new BundleDir(RootPath).WriteOCIConfig(JsonSerializer.SerializeToUtf8Bytes(config, VmBundleJson.Default.DictionaryStringObject));
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"create bundle {RootPath} for vm {vmId}: {e.Message}", e);
        }
    }

    /// <summary>Removes the bundle; absent is fine.</summary>
    public void Remove()
    {
        if (Directory.Exists(RootPath))
        {
            Directory.Delete(RootPath, recursive: true);
        }
    }

    /// <summary>The VM ids with a bundle in namespace <paramref name="ns"/> under <paramref name="stateDir"/>.</summary>
    public static IReadOnlyList<string> VmIdsIn(string stateDir, string ns)
    {
        string dir = Path.Combine(stateDir, ns);
        return Directory.Exists(dir)
            ? [.. Directory.EnumerateDirectories(dir).Select(Path.GetFileName).OfType<string>().Where(Identifiers.IsValid).Order(StringComparer.Ordinal)]
            : [];
    }
}

/// <summary>Source-generated JSON metadata for the bundle's config.json.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, object>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class VmBundleJson : System.Text.Json.Serialization.JsonSerializerContext;
