using System.Collections.Immutable;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Network.Tap;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Ttrpc;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>
/// CreateVM's network interface given as CNI configuration, checked, with upstream's defaults filled in: the network
/// (a configuration in <see cref="ConfDir"/> whose plugin chain ends with tc-redirect-tap), the interface name the
/// plugins make (<c>CNI_IFNAME</c>), where the plugins are and <c>CNI_ARGS</c>. As upstream, a VM has at most one
/// such interface and no static one beside it.
/// </summary>
/// <param name="NetworkName">The network's name, as its configuration file names it.</param>
/// <param name="InterfaceName">The interface the plugins make in the VM's namespace (the veth).</param>
/// <param name="BinPath">The directories searched for plugins, in order; also their <c>CNI_PATH</c>.</param>
/// <param name="ConfDir">The directory holding the network's configuration.</param>
/// <param name="Args">The <c>CNI_ARGS</c> pairs.</param>
internal sealed record CniNetworkRequest(
    string NetworkName,
    string InterfaceName,
    ImmutableArray<string> BinPath,
    string ConfDir,
    ImmutableArray<KeyValuePair<string, string>> Args)
{
    /// <summary>Where the network's configuration is looked for when the request names no directory (upstream's default).</summary>
    public const string DefaultConfDir = "/etc/cni/conf.d";

    /// <summary>
    /// The interface name when the request gives none. Upstream has no default (its CNI library refuses an empty name)
    /// and its documentation always gives this one.
    /// </summary>
    public const string DefaultInterfaceName = "veth0";

    /// <summary>Where plugins are looked for when the request names no directory: upstream's, then Debian's (containernetworking-plugins).</summary>
    public static ImmutableArray<string> DefaultBinPath { get; } = ["/opt/cni/bin", "/usr/lib/cni"];

    /// <summary>The CNI interface of <paramref name="request"/>, checked; null when it has none.</summary>
    /// <exception cref="TtrpcException">
    /// InvalidArgument: more than one CNI interface, one beside other interfaces, or a malformed field (named);
    /// Unimplemented: MMDS or rate limiters on it.
    /// </exception>
    public static CniNetworkRequest? FromRequest(CreateVMRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        int index = -1;
        for (int i = 0; i < request.NetworkInterfaces.Count; i++)
        {
            if (request.NetworkInterfaces[i].CNIConfig is null)
            {
                continue;
            }

            if (index >= 0)
            {
                throw Invalid(request, $"NetworkInterfaces[{index}] and [{i}] both have CNIConfig: a VM has at most one CNI interface");
            }

            index = i;
        }

        if (index < 0)
        {
            return null;
        }

        string name = $"NetworkInterfaces[{index}]";
        if (request.NetworkInterfaces.Count > 1)
        {
            throw Invalid(request, $"{name}: a CNI interface cannot be combined with other interfaces ({request.NetworkInterfaces.Count} given)");
        }

        FirecrackerNetworkInterface nic = request.NetworkInterfaces[index];
        GuestNetwork.RejectUnsupported(request, nic, name);
        if (nic.StaticConfig is not null)
        {
            throw Invalid(request, $"{name}: give either CNIConfig or StaticConfig, not both");
        }

        CNIConfiguration cni = nic.CNIConfig;
        if (!CniAttachment.IsCniName(cni.NetworkName))
        {
            throw Invalid(request, $"{name}.CNIConfig.NetworkName \"{Shown(cni.NetworkName)}\" is not a CNI network name (a letter or digit, then letters, digits, '_', '.' or '-')");
        }

        string interfaceName = cni.InterfaceName.Length == 0 ? DefaultInterfaceName : cni.InterfaceName;
        try
        {
            TapDevice.ValidateName(interfaceName);
        }
        catch (ArgumentException e)
        {
            throw Invalid(request, $"{name}.CNIConfig.InterfaceName \"{Shown(interfaceName)}\" {e.Message}");
        }

        foreach (string directory in cni.BinPath.Append(cni.ConfDir).Append(cni.CacheDir).Where(d => d.Length > 0))
        {
            // CNI_PATH is a colon-separated list: a directory with a colon in it cannot be passed on.
            if (!Path.IsPathFullyQualified(directory) || directory.Contains(':', StringComparison.Ordinal) || directory.Any(char.IsControl))
            {
                throw Invalid(request, $"{name}.CNIConfig: \"{Shown(directory)}\" is not an absolute directory path without ':'");
            }
        }

        var args = ImmutableArray.CreateBuilder<KeyValuePair<string, string>>();
        foreach (CNIConfiguration.Types.CNIArg arg in cni.Args)
        {
            if (arg.Key.Length == 0 || arg.Key.IndexOfAny(['=', ';']) >= 0 || arg.Value.Contains(';', StringComparison.Ordinal)
                || arg.Key.Any(char.IsControl) || arg.Value.Any(char.IsControl))
            {
                throw Invalid(request, $"{name}.CNIConfig.Args: \"{Shown(arg.Key)}={Shown(arg.Value)}\" is not a CNI_ARGS pair (a key without '=' or ';', a value without ';')");
            }

            args.Add(new(arg.Key, arg.Value));
        }

        return new CniNetworkRequest(
            cni.NetworkName,
            interfaceName,
            cni.BinPath.Count == 0 ? DefaultBinPath : [.. cni.BinPath],
            cni.ConfDir.Length == 0 ? DefaultConfDir : cni.ConfDir,
            args.ToImmutable());
    }

    /// <summary>The network's configuration, read now so that a wrong name fails CreateVM before anything is made.</summary>
    /// <exception cref="CniConfigException">The directory has no such network, or its file is not a valid configuration.</exception>
    public CniNetworkConfig LoadNetwork() => CniNetworkConfig.Load(ConfDir, NetworkName);

    private static TtrpcException Invalid(CreateVMRequest request, string problem) =>
        new(StatusCode.InvalidArgument, $"create vm \"{request.VMID}\": {problem}");

    private static string Shown(string text) => UntrustedText.Shown(text, 64);
}
