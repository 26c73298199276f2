using System.Collections.Immutable;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Ttrpc;
using VmmNetworkInterface = FirecrackerContainerd.Vmm.Machine.NetworkInterface;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>
/// CreateVM's static network interfaces (a CNI one is <see cref="CniNetworkRequest"/>'s): each becomes a virtio-net
/// device backed by a TAP device that already exists on the host, and the guest's /init configures it (address,
/// default route, nameservers) from the <c>fc.net=</c> and <c>fc.dns=</c> kernel arguments built here.
/// </summary>
internal static partial class GuestNetwork
{
    /// <summary>Most interfaces one VM gets.</summary>
    public const int MaxInterfaces = 4;

    /// <summary>Most nameservers (the resolver reads three).</summary>
    public const int MaxNameservers = 3;

    private const int MaxTapNameBytes = 15;

    /// <summary>The interfaces and kernel arguments for <paramref name="request"/>; empty when it asks for none.</summary>
    /// <param name="request">The CreateVM request.</param>
    /// <param name="isTapDevice">Whether a host network device of that name exists and is a TAP device.</param>
    /// <exception cref="TtrpcException">InvalidArgument or Unimplemented, naming the interface and field.</exception>
    public static (ImmutableArray<VmmNetworkInterface> Devices, string KernelArgs) FromRequest(CreateVMRequest request, Func<string, bool> isTapDevice)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(isTapDevice);
        if (request.NetworkInterfaces.Count == 0)
        {
            return ([], string.Empty);
        }

        if (request.NetworkInterfaces.Count > MaxInterfaces)
        {
            throw Invalid(request, $"{request.NetworkInterfaces.Count} network interfaces (at most {MaxInterfaces})");
        }

        var devices = ImmutableArray.CreateBuilder<VmmNetworkInterface>();
        var args = new List<string>();
        var nameservers = new List<string>();
        var macs = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var taps = new HashSet<string>(StringComparer.Ordinal);
        bool gateway = false;
        for (int i = 0; i < request.NetworkInterfaces.Count; i++)
        {
            FirecrackerNetworkInterface nic = request.NetworkInterfaces[i];
            string name = $"NetworkInterfaces[{i}]";
            RejectUnsupported(request, nic, name);
            if (nic.CNIConfig is not null)
            {
                // CniNetworkRequest takes a request with a CNI interface; here it can only be one of several.
                throw Invalid(request, $"{name}: CNIConfig cannot be combined with other interfaces (one CNI interface per VM, and no static ones beside it)");
            }

            StaticNetworkConfiguration config = nic.StaticConfig ?? throw Invalid(request, $"{name}: StaticConfig is required");
            string mac = config.MacAddress.ToLowerInvariant();
            if (!MacPattern().IsMatch(mac) || (Convert.ToByte(mac[..2], 16) & 1) != 0)
            {
                throw Invalid(request, $"{name}: MacAddress \"{Printable(config.MacAddress)}\" is not a unicast MAC of the form aa:bb:cc:dd:ee:ff");
            }

            if (!macs.Add(mac))
            {
                throw Invalid(request, $"{name}: MacAddress {mac} is used twice");
            }

            string tap = config.HostDevName;
            if (!TapNamePattern().IsMatch(tap) || tap.Length > MaxTapNameBytes || tap is "." or "..")
            {
                throw Invalid(request, $"{name}: HostDevName \"{Printable(tap)}\" is not a network device name (1-{MaxTapNameBytes} of letters, digits, '_', '-', '.')");
            }

            if (!taps.Add(tap))
            {
                throw Invalid(request, $"{name}: HostDevName {tap} is used twice");
            }

            if (!isTapDevice(tap))
            {
                throw Invalid(request, $"{name}: HostDevName {tap} is not a TAP device on this host (create it first: ip tuntap add dev {tap} mode tap)");
            }

            string address = string.Empty;
            string via = string.Empty;
            if (config.IPConfig is { } ip)
            {
                (IPAddress primary, int prefix) = ParseCidr(request, $"{name}.IPConfig.PrimaryAddr", ip.PrimaryAddr);
                address = $"{primary}/{prefix.ToString(CultureInfo.InvariantCulture)}";
                if (ip.GatewayAddr.Length > 0)
                {
                    IPAddress router = ParseIpv4(request, $"{name}.IPConfig.GatewayAddr", ip.GatewayAddr);
                    if (!SameSubnet(primary, router, prefix) || router.Equals(primary))
                    {
                        throw Invalid(request, $"{name}.IPConfig.GatewayAddr {router} is not another address of {address}");
                    }

                    if (gateway)
                    {
                        throw Invalid(request, $"{name}.IPConfig.GatewayAddr: only one interface can have the default route");
                    }

                    gateway = true;
                    via = router.ToString();
                }

                foreach (string server in ip.Nameservers)
                {
                    nameservers.Add(ParseIp(request, $"{name}.IPConfig.Nameservers", server).ToString());
                }
            }

            devices.Add(new VmmNetworkInterface(InterfaceId(i), tap, mac));
            args.Add(NetArgument(mac, address, via));
        }

        if (nameservers.Count > MaxNameservers)
        {
            throw Invalid(request, $"{nameservers.Count} nameservers (at most {MaxNameservers})");
        }

        if (nameservers.Count > 0)
        {
            args.Add(DnsArgument(nameservers));
        }

        return (devices.ToImmutable(), string.Join(' ', args));
    }

    /// <summary>The VMM's id of the <paramref name="index"/>th interface.</summary>
    public static string InterfaceId(int index) => $"net{index.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>
    /// The kernel argument from which the guest's /init configures one interface: found by its MAC, given the address
    /// (<c>a.b.c.d/prefix</c>, or empty to bring it up only) and the default route (or empty).
    /// </summary>
    public static string NetArgument(string mac, string address, string gateway) => $"fc.net={mac},{address},{gateway}";

    /// <summary>The kernel argument from which the guest's /init writes /etc/resolv.conf.</summary>
    public static string DnsArgument(IEnumerable<string> nameservers) => $"fc.dns={string.Join(',', nameservers)}";

    /// <summary>Refuses what no interface can have under this runtime, naming the field.</summary>
    /// <exception cref="TtrpcException">Unimplemented.</exception>
    public static void RejectUnsupported(CreateVMRequest request, FirecrackerNetworkInterface nic, string name)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(nic);
        string? unsupported =
            nic.AllowMMDS ? "AllowMMDS (the VMM has no metadata service; the guest reads the metadata at /run/fc-metadata/metadata.json)"
            : nic.InRateLimiter is not null || nic.OutRateLimiter is not null ? "rate limiters (the QEMU driver does not limit network traffic)"
            : null;
        if (unsupported is not null)
        {
            throw new TtrpcException(StatusCode.Unimplemented, $"create vm \"{request.VMID}\": {name}: {unsupported}");
        }
    }

    /// <summary>Whether <paramref name="name"/> is a TAP device of this host (it has tun_flags in sysfs).</summary>
    public static bool IsHostTapDevice(string name) => File.Exists(Path.Combine("/sys/class/net", name, "tun_flags"));

    private static (IPAddress Address, int Prefix) ParseCidr(CreateVMRequest request, string field, string text)
    {
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || !int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int prefix) || prefix is < 1 or > 32
            || text[(slash + 1)..] != prefix.ToString(CultureInfo.InvariantCulture))
        {
            throw Invalid(request, $"{field} \"{Printable(text)}\" is not an IPv4 address with a prefix length (e.g. 172.16.0.2/24)");
        }

        return (ParseIpv4(request, field, text[..slash]), prefix);
    }

    private static IPAddress ParseIpv4(CreateVMRequest request, string field, string text)
    {
        IPAddress address = ParseIp(request, field, text);
        return address.AddressFamily == AddressFamily.InterNetwork
            ? address
            : throw Invalid(request, $"{field} \"{Printable(text)}\" is not an IPv4 address");
    }

    // Strict: IPAddress.Parse also takes forms like "10" or "010.1", which the guest's tools read differently.
    private static IPAddress ParseIp(CreateVMRequest request, string field, string text) =>
        IPAddress.TryParse(text, out IPAddress? address) && address.ToString() == text
            && (address.AddressFamily == AddressFamily.InterNetwork || address.ScopeId == 0)
            && !IPAddress.Any.Equals(address) && !IPAddress.Broadcast.Equals(address)
            ? address
            : throw Invalid(request, $"{field} \"{Printable(text)}\" is not an IP address in its usual form");

    private static bool SameSubnet(IPAddress a, IPAddress b, int prefix)
    {
        uint mask = prefix == 32 ? uint.MaxValue : ~(uint.MaxValue >> prefix);
        return (ToUInt32(a) & mask) == (ToUInt32(b) & mask);
    }

    private static uint ToUInt32(IPAddress address)
    {
        byte[] bytes = address.GetAddressBytes();
        return ((uint)bytes[0] << 24) | ((uint)bytes[1] << 16) | ((uint)bytes[2] << 8) | bytes[3];
    }

    private static TtrpcException Invalid(CreateVMRequest request, string problem) =>
        new(StatusCode.InvalidArgument, $"create vm \"{request.VMID}\": {problem}");

    private static string Printable(string text) => UntrustedText.Shown(text, 64);

    [GeneratedRegex(@"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\z")]
    private static partial Regex MacPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_.-]+\z")]
    private static partial Regex TapNamePattern();
}
