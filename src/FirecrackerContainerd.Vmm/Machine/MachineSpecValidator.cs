using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>Checks a <see cref="MachineSpec"/> against the rules every VMM driver relies on.</summary>
/// <remarks>
/// The rules are the intersection of what Firecracker and QEMU accept, so a spec that passes here
/// fails in a driver only for host reasons (missing file, busy socket), never for its shape.
/// </remarks>
public static partial class MachineSpecValidator
{
    /// <summary>Linux IFNAMSIZ is 16 including the terminating NUL.</summary>
    private const int MaxTapNameBytes = 15;

    /// <summary>Throws <see cref="InvalidMachineSpecException"/> listing every problem of <paramref name="spec"/>.</summary>
    /// <param name="spec">The spec to check.</param>
    /// <param name="checkHostFiles">Also require the kernel, initrd and drive files to exist on this host.</param>
    public static void ThrowIfInvalid(MachineSpec spec, bool checkHostFiles = false)
    {
        var problems = Problems(spec, checkHostFiles);
        if (problems.Count > 0)
        {
            throw new InvalidMachineSpecException(spec.VmId, problems);
        }
    }

    /// <summary>Returns every rule <paramref name="spec"/> breaks, as sentences; empty when valid.</summary>
    public static IReadOnlyList<string> Problems(MachineSpec spec, bool checkHostFiles = false)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var problems = new List<string>();
        if (string.IsNullOrEmpty(spec.VmId))
        {
            problems.Add("vm id must not be empty");
        }

        CheckBoot(spec.Boot, checkHostFiles, problems);
        CheckMachine(spec.Machine, problems);
        CheckDrives(spec, checkHostFiles, problems);
        CheckVsock(spec.Vsock, problems);
        CheckNetwork(spec, problems);
        CheckBalloon(spec, problems);
        return problems;
    }

    /// <summary>Firecracker accepts only these characters in resource ids because they appear in URL paths.</summary>
    [GeneratedRegex(@"^[A-Za-z0-9_]+\z")]
    internal static partial Regex ResourceIdPattern();

    [GeneratedRegex(@"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}\z")]
    private static partial Regex MacPattern();

    private static void CheckBoot(BootSource? boot, bool checkHostFiles, List<string> problems)
    {
        if (boot is null || string.IsNullOrWhiteSpace(boot.KernelImagePath))
        {
            problems.Add("boot source: kernel image path is missing");
            return;
        }

        if (checkHostFiles && !File.Exists(boot.KernelImagePath))
        {
            problems.Add($"boot source: kernel image \"{boot.KernelImagePath}\" does not exist");
        }

        if (boot.InitrdPath is not null)
        {
            if (boot.InitrdPath.Length == 0)
            {
                problems.Add("boot source: initrd path is empty (use null for no initrd)");
            }
            else if (checkHostFiles && !File.Exists(boot.InitrdPath))
            {
                problems.Add($"boot source: initrd \"{boot.InitrdPath}\" does not exist");
            }
        }
    }

    private static void CheckMachine(MachineConfig? machine, List<string> problems)
    {
        if (machine is null)
        {
            problems.Add("machine config is missing");
            return;
        }

        if (machine.VcpuCount < 1 || machine.VcpuCount > MachineConfig.MaxVcpus)
        {
            problems.Add($"machine config: vcpu count {machine.VcpuCount} is outside 1..{MachineConfig.MaxVcpus}");
        }
        else if (machine.Smt && machine.VcpuCount != 1 && machine.VcpuCount % 2 != 0)
        {
            problems.Add($"machine config: with SMT the vcpu count must be 1 or even, not {machine.VcpuCount}");
        }

        if (machine.MemSizeMib < 1)
        {
            problems.Add($"machine config: memory size {machine.MemSizeMib} MiB must be at least 1 MiB");
        }
    }

    private static void CheckDrives(MachineSpec spec, bool checkHostFiles, List<string> problems)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string? root = null;
        foreach (var drive in spec.Drives)
        {
            if (!IsResourceId(drive.DriveId))
            {
                problems.Add($"drive id \"{drive.DriveId}\" must be non-empty letters, digits or '_'");
            }
            else if (!seen.Add(drive.DriveId))
            {
                problems.Add($"drive id \"{drive.DriveId}\" is used more than once");
            }

            if (string.IsNullOrWhiteSpace(drive.HostPath))
            {
                problems.Add($"drive \"{drive.DriveId}\": host path is missing");
            }
            else if (checkHostFiles && !File.Exists(drive.HostPath))
            {
                problems.Add($"drive \"{drive.DriveId}\": backing file \"{drive.HostPath}\" does not exist");
            }

            if (drive.IsRoot)
            {
                if (root is not null)
                {
                    problems.Add($"drives \"{root}\" and \"{drive.DriveId}\" are both marked root; at most one may be");
                }

                root ??= drive.DriveId;
            }
            else if (drive.PartUuid is not null)
            {
                problems.Add($"drive \"{drive.DriveId}\": a partuuid is only meaningful on the root drive");
            }

            CheckRateLimiter($"drive \"{drive.DriveId}\"", drive.RateLimiter, problems);
        }
    }

    private static void CheckVsock(VsockDevice? vsock, List<string> problems)
    {
        if (vsock is null)
        {
            return;
        }

        if (vsock.GuestCid < VsockDevice.MinGuestCid || vsock.GuestCid == uint.MaxValue)
        {
            problems.Add($"vsock: guest CID {vsock.GuestCid} is reserved; use {VsockDevice.MinGuestCid} or more (below 4294967295)");
        }

        if (string.IsNullOrWhiteSpace(vsock.UdsPath))
        {
            problems.Add("vsock: Unix socket path is missing");
        }
    }

    private static void CheckNetwork(MachineSpec spec, List<string> problems)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var nic in spec.NetworkInterfaces)
        {
            if (!IsResourceId(nic.IfaceId))
            {
                problems.Add($"network interface id \"{nic.IfaceId}\" must be non-empty letters, digits or '_'");
            }
            else if (!seen.Add(nic.IfaceId))
            {
                problems.Add($"network interface id \"{nic.IfaceId}\" is used more than once");
            }

            if (string.IsNullOrEmpty(nic.HostDevName) || System.Text.Encoding.UTF8.GetByteCount(nic.HostDevName) > MaxTapNameBytes
                || nic.HostDevName.Contains('/', StringComparison.Ordinal))
            {
                problems.Add($"network interface \"{nic.IfaceId}\": host device name \"{nic.HostDevName}\" must be 1..{MaxTapNameBytes} bytes without '/'");
            }

            if (nic.GuestMac is not null && !MacPattern().IsMatch(nic.GuestMac))
            {
                problems.Add($"network interface \"{nic.IfaceId}\": guest MAC \"{nic.GuestMac}\" is not of the form aa:bb:cc:dd:ee:ff");
            }

            CheckRateLimiter($"network interface \"{nic.IfaceId}\" rx", nic.RxRateLimiter, problems);
            CheckRateLimiter($"network interface \"{nic.IfaceId}\" tx", nic.TxRateLimiter, problems);
        }

        if (spec.Mmds is { } mmds)
        {
            if (!spec.NetworkInterfaces.Any(n => n.AllowMmds))
            {
                problems.Add("mmds: no network interface allows MMDS, so the guest could never reach it");
            }

            if (mmds.Ipv4Address is not null
                && (!IPAddress.TryParse(mmds.Ipv4Address, out var address) || !IsLinkLocal(address)))
            {
                problems.Add($"mmds: address \"{mmds.Ipv4Address}\" is not an IPv4 link-local address (169.254.1.0 - 169.254.254.255)");
            }

            if (mmds.InitialMetadata is { } metadata && metadata.ValueKind != JsonValueKind.Object)
            {
                problems.Add($"mmds: initial metadata must be a JSON object, not {metadata.ValueKind}");
            }
        }
    }

    private static void CheckBalloon(MachineSpec spec, List<string> problems)
    {
        if (spec.Balloon is not { } balloon)
        {
            return;
        }

        if (balloon.AmountMib < 0 || (spec.Machine is not null && balloon.AmountMib >= spec.Machine.MemSizeMib))
        {
            problems.Add($"balloon: amount {balloon.AmountMib} MiB must be at least 0 and below the memory size");
        }

        if (balloon.StatsPollingIntervalSeconds is < 0 or > BalloonDevice.MaxStatsPollingIntervalSeconds)
        {
            problems.Add($"balloon: statistics interval {balloon.StatsPollingIntervalSeconds} s must be between 0 and {BalloonDevice.MaxStatsPollingIntervalSeconds}");
        }
    }

    private static void CheckRateLimiter(string owner, RateLimiter? limiter, List<string> problems)
    {
        foreach (var (name, bucket) in new[] { ("bandwidth", limiter?.Bandwidth), ("ops", limiter?.Ops) })
        {
            if (bucket is not null && (bucket.Size < 0 || bucket.RefillTimeMs < 0 || bucket.OneTimeBurst < 0))
            {
                problems.Add($"{owner}: {name} rate limiter values must not be negative");
            }
        }
    }

    private static bool IsResourceId(string? id) => id is not null && ResourceIdPattern().IsMatch(id);

    private static bool IsLinkLocal(IPAddress address)
    {
        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            return false;
        }

        var bytes = address.GetAddressBytes();
        return bytes[0] == 169 && bytes[1] == 254 && bytes[2] is >= 1 and <= 254;
    }
}
