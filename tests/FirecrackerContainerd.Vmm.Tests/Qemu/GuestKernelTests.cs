using System.Collections.Immutable;
using System.Text;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;
using Xunit.Abstractions;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>Our guest kernel as it runs: what its configuration holds, and how the QEMU driver's arguments make it keep time.</summary>
[Trait("Category", "Vm")]
public sealed class GuestKernelTests : IDisposable
{
    /// <summary>
    /// What the agent, crun and the containers rely on, read back from the running kernel: virtio-mmio devices (disks,
    /// network, vsock, the balloon with free page reporting), the file systems, cgroup v2 with its controllers and BPF
    /// device control, every namespace, seccomp, the kernel's IP configuration and the PVH entry, with no modules.
    /// </summary>
    private static readonly string[] RequiredOptions =
    [
        "CONFIG_PVH=y", "CONFIG_ACPI=y", "CONFIG_VIRTIO_MMIO=y", "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y", "CONFIG_VIRTIO_BLK=y",
        "CONFIG_VIRTIO_NET=y", "CONFIG_VSOCKETS=y", "CONFIG_VIRTIO_VSOCKETS=y", "CONFIG_VIRTIO_BALLOON=y", "CONFIG_PAGE_REPORTING=y",
        "CONFIG_BLK_DEV_INITRD=y", "CONFIG_EXT4_FS=y", "CONFIG_OVERLAY_FS=y", "CONFIG_TMPFS=y", "CONFIG_DEVTMPFS=y", "CONFIG_UNIX98_PTYS=y",
        "CONFIG_CGROUPS=y", "CONFIG_MEMCG=y", "CONFIG_CGROUP_PIDS=y", "CONFIG_CPUSETS=y", "CONFIG_CGROUP_SCHED=y", "CONFIG_CFS_BANDWIDTH=y",
        "CONFIG_BLK_CGROUP=y", "CONFIG_CGROUP_FREEZER=y", "CONFIG_CGROUP_BPF=y", "CONFIG_BPF_SYSCALL=y", "CONFIG_UTS_NS=y",
        "CONFIG_IPC_NS=y", "CONFIG_PID_NS=y", "CONFIG_NET_NS=y", "CONFIG_USER_NS=y", "CONFIG_TIME_NS=y", "CONFIG_SECCOMP_FILTER=y",
        "CONFIG_POSIX_MQUEUE=y", "CONFIG_IP_PNP=y", "CONFIG_SERIAL_8250_CONSOLE=y", "# CONFIG_MODULES is not set",
    ];

    private readonly string _dir = Directory.CreateTempSubdirectory("fc-kernel-").FullName;
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(4));
    private readonly ITestOutputHelper _output;

    public GuestKernelTests(ITestOutputHelper output)
    {
        _output = output;
    }

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Our_kernel_shows_the_options_the_agent_and_crun_need_and_keeps_time_with_the_TSC_on_two_vCPUs()
    {
        QemuBinary.Require();
        GuestImage image = await GuestImage.BuildAsync(agent: null, GuestImage.OurKernel, _timeout.Token);
        // Only the lines asked for come back: the serial console is slow under TCG.
        string pattern = string.Join('|', RequiredOptions.Select(o => o.StartsWith('#') ? o[2..].Split(' ')[0] : o.Split('=')[0]));
        string script = $"""
            zcat /proc/config.gz | grep -E '^(# )?({pattern})[= ]' | sed 's/^/kconfig: /'
            echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
            echo kernel-checked
            """;
        var spec = new MachineSpec(
            "kernel-vm",
            new BootSource(image.Kernel, image.Initrd, "reboot=k panic=-1 quiet fc.init64=" + Convert.ToBase64String(Encoding.ASCII.GetBytes(script))),
            new MachineConfig(2, 128),
            ImmutableArray<Drive>.Empty);
        var console = new ConsoleLog();
        await using var machine = new QemuMachine(spec, new VmDir(Path.Combine(_dir, "ns#kernel-vm")), new QemuOptions(), console);
        try
        {
            await machine.StartAsync(_timeout.Token);
            await console.WaitForAsync("kernel-checked", _timeout.Token);
        }
        finally
        {
            _output.WriteLine(console.ToString());
        }

        // Console lines come as "vm <id> VMM stdout: <what the guest printed>".
        string[] said = console.Lines.Select(l => l.TrimEnd('\r')).ToArray();
        string[] shown = said.Where(l => l.Contains("kconfig: ", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf("kconfig: ", StringComparison.Ordinal) + "kconfig: ".Length)..]).ToArray();
        Assert.Empty(RequiredOptions.Except(shown));

        // Two TCG vCPUs read TSCs that look unsynchronised to the kernel; without tsc=reliable it falls back to jiffies,
        // loses its tickless idle and an idle guest costs ten times the CPU (docs/guest-image.md). Until its refined
        // calibration, about a second after boot, the kernel names the TSC clocksource tsc-early.
        Assert.Contains(said, l => l.EndsWith("clocksource: tsc", StringComparison.Ordinal) || l.EndsWith("clocksource: tsc-early", StringComparison.Ordinal));
    }
}
