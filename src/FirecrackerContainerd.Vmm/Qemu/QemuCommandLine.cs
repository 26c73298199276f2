using System.Collections.Immutable;
using System.Globalization;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Vmm.Qemu;

/// <summary>
/// Turns a machine spec into a QEMU command line: a microvm machine with virtio-mmio devices described by
/// ACPI, guest RAM in a shared memfd (so the vhost-user vsock device can map it), QMP on a Unix socket,
/// the serial console on standard output, and no reboot (a guest reboot or poweroff ends the process).
/// </summary>
internal static class QemuCommandLine
{
    /// <summary>The QMP socket, relative to the VM directory QEMU runs in.</summary>
    public const string QmpSocketName = "qmp.sock";

    /// <summary>The vhost-user socket between QEMU and the vsock device, relative to the VM directory.</summary>
    public const string VhostUserVsockSocketName = "vhost-vsock.sock";

    /// <summary>
    /// Kernel arguments every QEMU guest gets. Under TCG the kernel's TSC calibration hangs about every
    /// second boot unless told the TSC rate (measured: tsc_early_khz removes the hang), and with more than one
    /// vCPU the kernel finds the emulated TSCs unsynchronised, falls back to the jiffies clocksource and so
    /// ticks on every idle vCPU: an idle 2-vCPU guest cost 7.4 % of a host core, 0.5 % with tsc=reliable.
    /// random.trust_cpu=on seeds the kernel's random generator from RDRAND at boot: a guest has no other
    /// entropy to speak of, and without it our kernel's crng was not ready seconds after /init, so the
    /// agent's first getrandom() waited (agent ready 4.3-5.2 s against 1.4-2.1 s to /init).
    /// A root drive is named <c>root=/dev/vda</c> (or its partition UUID), read-only when the drive is.
    /// </summary>
    public static string KernelArgs(MachineSpec spec, QemuAccelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var args = new List<string> { "console=ttyS0", "random.trust_cpu=on" };
        if (accelerator == QemuAccelerator.Tcg)
        {
            args.Add("tsc_early_khz=2000000");
            args.Add("tsc=reliable");
        }

        // As Firecracker does for its root device: the root drive is the first block device QEMU creates, so /dev/vda.
        if (spec.Drives.FirstOrDefault(d => d.IsRoot) is { } root)
        {
            args.Add(root.PartUuid is { } partUuid ? $"root=PARTUUID={partUuid}" : "root=/dev/vda");
            args.Add(root.IsReadOnly ? "ro" : "rw");
        }

        args.Add(spec.Boot.KernelArgs ?? "reboot=k panic=-1");
        return string.Join(' ', args);
    }

    /// <summary>
    /// QEMU's seccomp filter, installed before the guest runs: beside the syscalls QEMU never needs, it may not
    /// regain privileges (setuid and the like; it also sets no_new_privs), spawn processes, or change scheduling and
    /// resource limits. Nothing this runtime asks of QEMU needs those: taps come with script=no, files and sockets
    /// are opened by the QMP commands it serves.
    /// </summary>
    public const string Sandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

    /// <summary>The argv after the program name.</summary>
    /// <param name="spec">The machine.</param>
    /// <param name="accelerator">KVM or TCG.</param>
    /// <param name="tcgTranslationCacheMib">TCG's translated-code cache in MiB (<c>tb-size</c>), 0 for QEMU's default.</param>
    /// <param name="socketDirectory">Where QEMU makes its QMP socket and finds the vhost-user one, relative to its working directory; empty for the working directory itself.</param>
    public static ImmutableArray<string> Arguments(MachineSpec spec, QemuAccelerator accelerator, int tcgTranslationCacheMib = 0, string socketDirectory = "")
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentOutOfRangeException.ThrowIfNegative(tcgTranslationCacheMib);
        string mem = spec.Machine.MemSizeMib.ToString(CultureInfo.InvariantCulture) + "M";
        var argv = ImmutableArray.CreateBuilder<string>();
        argv.AddRange(
            "-name", $"guest={spec.VmId}",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-M", "microvm,acpi=on,memory-backend=mem",
            "-accel", accelerator == QemuAccelerator.Kvm ? "kvm" : TcgAccelerator(tcgTranslationCacheMib),
            "-cpu", accelerator == QemuAccelerator.Kvm ? "host" : "max",
            "-smp", spec.Machine.VcpuCount.ToString(CultureInfo.InvariantCulture),
            "-m", mem,
            "-object", $"memory-backend-memfd,id=mem,size={mem},share=on",
            // vhost-user devices refuse legacy virtio; the guest drivers speak modern virtio-mmio.
            "-global", "virtio-mmio.force-legacy=false",
            "-serial", "stdio",
            "-qmp", $"unix:{Path.Join(socketDirectory, QmpSocketName)},server=on,wait=off",
            "-sandbox", Sandbox,
            "-kernel", spec.Boot.KernelImagePath);
        if (spec.Boot.InitrdPath is { } initrd)
        {
            argv.AddRange("-initrd", initrd);
        }

        argv.AddRange("-append", KernelArgs(spec, accelerator));

        // The root drive first: the guest names block devices in the order QEMU creates them.
        foreach (Drive drive in spec.Drives.OrderBy(d => d.IsRoot ? 0 : 1))
        {
            string readOnly = drive.IsReadOnly ? ",read-only=on" : string.Empty;
            string cache = drive.CacheType == DriveCacheType.Writeback ? "writeback" : "unsafe";
            argv.AddRange(
                "-blockdev", $"driver=file,node-name={drive.DriveId}-file,filename={Escape(drive.HostPath)}{readOnly},cache.direct=off",
                "-blockdev", $"driver=raw,node-name={drive.DriveId},file={drive.DriveId}-file{readOnly},cache.no-flush={(cache == "unsafe" ? "on" : "off")}",
                "-device", $"virtio-blk-device,drive={drive.DriveId},serial={drive.DriveId}");
        }

        if (spec.Vsock is not null)
        {
            argv.AddRange(
                "-chardev", $"socket,id=vsock,path={Path.Join(socketDirectory, VhostUserVsockSocketName)}",
                "-device", "vhost-user-vsock-device,chardev=vsock");
        }

        foreach (NetworkInterface nic in spec.NetworkInterfaces)
        {
            string mac = nic.GuestMac is null ? string.Empty : $",mac={nic.GuestMac}";
            argv.AddRange(
                "-netdev", $"tap,id={nic.IfaceId},ifname={nic.HostDevName},script=no,downscript=no",
                "-device", $"virtio-net-device,netdev={nic.IfaceId}{mac}");
        }

        if (spec.Balloon is not null)
        {
            string reporting = spec.Balloon.FreePageReporting ? ",free-page-reporting=on" : string.Empty;
            argv.AddRange("-device", $"virtio-balloon-device,id=balloon,deflate-on-oom={(spec.Balloon.DeflateOnOom ? "on" : "off")}{reporting}");
        }

        return argv.ToImmutable();
    }

    private static string TcgAccelerator(int translationCacheMib) =>
        translationCacheMib == 0
            ? "tcg,thread=multi"
            : "tcg,thread=multi,tb-size=" + translationCacheMib.ToString(CultureInfo.InvariantCulture);

    // QEMU option values separate fields with ','; a literal comma is written twice.
    private static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);
}
