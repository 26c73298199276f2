using System.Text.Json;

namespace FirecrackerContainerd.Core;

/// <summary>A container's OCI bundle directory, as containerd creates it on the host (or as the agent lays it out in the guest).</summary>
public readonly record struct BundleDir(string RootPath)
{
    /// <summary>The guest-side bundle directory of task <paramref name="taskId"/>: <c>/container/&lt;taskId&gt;</c>.</summary>
    public static BundleDir VMBundleDir(string taskId) => VMBundleDir(taskId, WellKnownNames.VmBundleRoot);

    /// <summary>
    /// The guest's bundle layout under <paramref name="bundleRoot"/> instead of <c>/container</c>:
    /// <c>&lt;bundleRoot&gt;/&lt;taskId&gt;</c>, for a guest agent run outside a VM.
    /// </summary>
    public static BundleDir VMBundleDir(string taskId, string bundleRoot)
    {
        Identifiers.Validate(taskId);
        return new BundleDir(GoPath.Join(bundleRoot, taskId));
    }

    /// <summary>
    /// The shim address file containerd looks for in the bundle; for a VM's shim it is a link to the
    /// address file in the VM directory.
    /// </summary>
    public string AddrFilePath => GoPath.Join(RootPath, WellKnownNames.ShimAddrFileName);

    /// <summary>The log FIFO containerd creates in the bundle for the shim.</summary>
    public string LogFifoPath => GoPath.Join(RootPath, WellKnownNames.ShimLogFifoName);

    /// <summary>The bundle's rootfs directory.</summary>
    public string RootfsPath => GoPath.Join(RootPath, WellKnownNames.BundleRootfsName);

    /// <summary>The bundle's OCI runtime config.</summary>
    public string OCIConfigPath => GoPath.Join(RootPath, WellKnownNames.OciConfigName);

    /// <summary>Reads config.json.</summary>
    public byte[] ReadOCIConfig()
    {
        try
        {
            return File.ReadAllBytes(OCIConfigPath);
        }
        catch (IOException e)
        {
            throw new IOException($"failed to read OCI config file {OCIConfigPath}: {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"failed to read OCI config file {OCIConfigPath}: {e.Message}", e);
        }
    }

    /// <summary>Creates or replaces config.json atomically (temp file and rename).</summary>
    public void WriteOCIConfig(ReadOnlySpan<byte> contents)
    {
        string temp = $"{OCIConfigPath}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var file = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            {
                file.Write(contents);
                file.Flush(flushToDisk: true);
            }

            File.Move(temp, OCIConfigPath, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            File.Delete(temp);
            throw new IOException($"failed to write OCI config file {OCIConfigPath}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The VM id named by the OCI annotation <c>aws.firecracker.vm.id</c> in the bundle's config.json, or null when
    /// there is none. A config.json whose annotations are not an object of strings is an error.
    /// </summary>
    public string? VMID() => Annotation(WellKnownNames.VmIdAnnotation);

    /// <summary>
    /// The value of OCI annotation <paramref name="key"/> in the bundle's config.json, or null when it has none. A
    /// config.json whose annotations are not an object, or whose value for the key is not a string, is an error.
    /// </summary>
    public string? Annotation(string key)
    {
        byte[] json = ReadOCIConfig();
        try
        {
            using JsonDocument doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("annotations", out JsonElement annotations)
                || annotations.ValueKind == JsonValueKind.Null)
            {
                return null;
            }

            if (annotations.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException("annotations is not an object");
            }

            if (!annotations.TryGetProperty(key, out JsonElement value))
            {
                return null;
            }

            return value.ValueKind == JsonValueKind.String
                ? value.GetString()
                : throw new InvalidDataException($"annotation {key} is not a string");
        }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        {
            throw new InvalidDataException(
                $"failed to parse Annotations section of OCI config file {OCIConfigPath}: {e.Message}", e);
        }
    }
}
