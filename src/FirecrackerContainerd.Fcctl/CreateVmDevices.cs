using FirecrackerContainerd.Protos.FcControl;

namespace FirecrackerContainerd.Fcctl;

/// <summary>
/// The device options of <c>fcctl create-vm</c>, turned into CreateVM fields: <c>--net</c> (a static interface on a
/// host TAP device), <c>--cni</c> (an interface on a CNI network), <c>--drive</c> (a host file mounted in the guest)
/// and <c>--balloon-mib</c>. Only the shape is checked here; the shim checks the values and names the field it refuses.
/// </summary>
public static class CreateVmDevices
{
    /// <summary>The form of <c>--net</c>, for help and errors.</summary>
    public const string NetForm = "TAP,MAC[,ADDRESS/PREFIX[,GATEWAY[,NAMESERVER...]]]";

    /// <summary>The form of <c>--cni</c>, for help and errors.</summary>
    public const string CniForm = "NETWORK[:IFNAME]";

    /// <summary>The form of <c>--drive</c>, for help and errors.</summary>
    public const string DriveForm = "HOST_PATH:VM_PATH[:FSTYPE[:rw]]";

    /// <summary>A static interface from <c>TAP,MAC[,ADDRESS/PREFIX[,GATEWAY[,NAMESERVER...]]]</c>.</summary>
    /// <exception cref="FormatException">The text does not have that form.</exception>
    public static FirecrackerNetworkInterface ParseNet(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] parts = text.Split(',');
        // Every part but the gateway (which may be left empty to give nameservers without one) must be there.
        if (parts.Length < 2 || parts.Where((part, i) => i != 3).Any(part => part.Length == 0))
        {
            throw new FormatException($"--net \"{text}\" is not of the form {NetForm}");
        }

        var config = new StaticNetworkConfiguration { HostDevName = parts[0], MacAddress = parts[1] };
        if (parts.Length > 2)
        {
            config.IPConfig = new IPConfiguration { PrimaryAddr = parts[2], GatewayAddr = parts.Length > 3 ? parts[3] : string.Empty };
            config.IPConfig.Nameservers.Add(parts.Skip(4));
        }

        return new FirecrackerNetworkInterface { StaticConfig = config };
    }

    /// <summary>
    /// An interface on the CNI network <c>NETWORK[:IFNAME]</c>, its configuration looked for in
    /// <paramref name="confDir"/> and its plugins in <paramref name="binDirs"/> (the shim's defaults when empty).
    /// </summary>
    /// <exception cref="FormatException">The text does not have that form.</exception>
    public static FirecrackerNetworkInterface ParseCni(string text, string? confDir, IEnumerable<string> binDirs)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(binDirs);
        string[] parts = text.Split(':');
        if (parts.Length > 2 || parts.Any(p => p.Length == 0))
        {
            throw new FormatException($"--cni \"{text}\" is not of the form {CniForm}");
        }

        var config = new CNIConfiguration
        {
            NetworkName = parts[0],
            InterfaceName = parts.Length > 1 ? parts[1] : string.Empty,
            ConfDir = confDir is null ? string.Empty : Path.GetFullPath(confDir),
        };
        config.BinPath.Add(binDirs.Select(Path.GetFullPath));
        return new FirecrackerNetworkInterface { CNIConfig = config };
    }

    /// <summary>A drive mount from <c>HOST_PATH:VM_PATH[:FSTYPE[:rw]]</c> (ext4 and read-only unless given).</summary>
    /// <exception cref="FormatException">The text does not have that form.</exception>
    public static FirecrackerDriveMount ParseDrive(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] parts = text.Split(':');
        if (parts.Length is < 2 or > 4 || parts.Any(p => p.Length == 0) || (parts.Length == 4 && parts[3] != "rw"))
        {
            throw new FormatException($"--drive \"{text}\" is not of the form {DriveForm}");
        }

        return new FirecrackerDriveMount
        {
            HostPath = Path.GetFullPath(parts[0]),
            VMPath = parts[1],
            FilesystemType = parts.Length > 2 ? parts[2] : "ext4",
            IsWritable = parts.Length == 4,
        };
    }
}
