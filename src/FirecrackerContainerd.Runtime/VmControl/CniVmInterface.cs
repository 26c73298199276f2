using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Network.Tap;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>
/// What a CNI result gives a VM, read as upstream's firecracker-go-sdk (<c>vmconf</c>) reads it: tc-redirect-tap
/// appends the TAP (in the VM's network namespace) and a pseudo-interface named like it whose sandbox is the VM id,
/// carrying the MAC and the IP the guest takes. Every value is checked here, since each reaches the VMM's command
/// line or the guest kernel's.
/// </summary>
/// <param name="TapName">The TAP device in the VM's network namespace that the VMM's network device uses.</param>
/// <param name="Mac">The guest interface's MAC (lower case).</param>
/// <param name="Address">The guest's IPv4 address with its prefix length.</param>
/// <param name="Gateway">The default route's gateway, or null.</param>
/// <param name="Nameservers">The result's nameservers, at most <see cref="GuestNetwork.MaxNameservers"/>.</param>
internal sealed partial record CniVmInterface(string TapName, string Mac, CidrAddress Address, IPAddress? Gateway, ImmutableArray<string> Nameservers)
{
    /// <summary>Reads the VM's interface out of <paramref name="result"/> of the ADD for VM <paramref name="vmId"/> in <paramref name="netnsPath"/>.</summary>
    /// <exception cref="InvalidDataException">The result lacks what the VM needs, or has it in a form the guest cannot take; the message says which.</exception>
    public static CniVmInterface From(CniResult result, string vmId, string netnsPath)
    {
        ArgumentNullException.ThrowIfNull(result);
        (CniInterface Vm, CniInterface Tap)? pair;
        try
        {
            pair = result.FindVmTapPair(vmId);
        }
        catch (CniFormatException e)
        {
            throw new InvalidDataException(e.Message, e);
        }

        (CniInterface vm, CniInterface tap) = pair ?? throw new InvalidDataException(
            $"the result names no tap for vm \"{vmId}\": the network's plugin chain must end with tc-redirect-tap, which adds the tap and an interface whose sandbox is the vm id");
        if (tap.Sandbox != netnsPath)
        {
            throw new InvalidDataException($"the result's tap {Shown(tap.Name)} is in \"{Shown(tap.Sandbox ?? "")}\", not in the vm's network namespace {netnsPath}");
        }

        try
        {
            TapDevice.ValidateName(tap.Name);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"the result's tap name \"{Shown(tap.Name)}\" {e.Message}", e);
        }

        string mac = (vm.Mac ?? string.Empty).ToLowerInvariant();
        if (!MacPattern().IsMatch(mac) || (Convert.ToByte(mac[..2], 16) & 1) != 0)
        {
            throw new InvalidDataException($"the result gives vm \"{vmId}\" no unicast MAC (\"{Shown(vm.Mac ?? "")}\")");
        }

        CniIpConfig[] ipv4 = [.. result.IpsOf(vm.Name, vm.Sandbox).Where(ip => ip.Address.Address.AddressFamily == AddressFamily.InterNetwork)];
        if (ipv4.Length != 1 || ipv4[0].Address.PrefixLength is < 1 or > 32)
        {
            throw new InvalidDataException($"the result gives vm \"{vmId}\" {ipv4.Length} IPv4 addresses ({string.Join(", ", ipv4.Select(ip => ip.Address))}); the guest takes exactly one");
        }

        IPAddress? gateway = ipv4[0].Gateway is { AddressFamily: AddressFamily.InterNetwork } given
            ? given
            : result.Routes.FirstOrDefault(r => r.Destination.PrefixLength == 0 && r.Gateway is { AddressFamily: AddressFamily.InterNetwork })?.Gateway;
        ImmutableArray<string> nameservers = [.. result.Dns.Nameservers
            .Select(n => IPAddress.TryParse(n, out IPAddress? address) ? address.ToString() : throw new InvalidDataException($"the result's nameserver \"{Shown(n)}\" is not an IP address"))
            .Take(GuestNetwork.MaxNameservers)];
        return new CniVmInterface(tap.Name, mac, ipv4[0].Address, gateway, nameservers);
    }

    /// <summary>The kernel arguments from which the guest's /init configures the interface and its resolver.</summary>
    public string KernelArgs =>
        GuestNetwork.NetArgument(Mac, Address.ToString(), Gateway?.ToString() ?? string.Empty)
        + (Nameservers.IsEmpty ? string.Empty : " " + GuestNetwork.DnsArgument(Nameservers));

    private static string Shown(string text) => UntrustedText.Shown(text, 64);

    [GeneratedRegex(@"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\z")]
    private static partial Regex MacPattern();
}
