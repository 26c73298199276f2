using System.Collections.Immutable;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

public class QemuCommandLineTests
{
    private static readonly MachineSpec Spec = new(
        "vm1",
        new BootSource("/k/vmlinuz", "/k/initrd.img", "quiet"),
        new MachineConfig(2, 512),
        ImmutableArray.Create(new Drive("stub0", "/d/stub,0", IsReadOnly: true)),
        new VsockDevice(3, "firecracker.vsock"));

    [Fact]
    public void Guests_trust_the_cpus_random_numbers_and_under_tcg_get_the_tsc_rate_and_a_reliable_tsc()
    {
        Assert.Equal("console=ttyS0 random.trust_cpu=on tsc_early_khz=2000000 tsc=reliable quiet", QemuCommandLine.KernelArgs(Spec, QemuAccelerator.Tcg));
        Assert.Equal("console=ttyS0 random.trust_cpu=on quiet", QemuCommandLine.KernelArgs(Spec, QemuAccelerator.Kvm));
    }

    [Fact]
    public void Guest_memory_is_a_shared_memfd_for_the_vhost_user_device()
    {
        ImmutableArray<string> argv = QemuCommandLine.Arguments(Spec, QemuAccelerator.Tcg);
        Assert.Equal("memory-backend-memfd,id=mem,size=512M,share=on", After(argv, "-object"));
        Assert.Equal("microvm,acpi=on,memory-backend=mem", After(argv, "-M"));
        Assert.Equal("tcg,thread=multi", After(argv, "-accel"));
        Assert.Equal("virtio-mmio.force-legacy=false", After(argv, "-global"));
        Assert.Contains("-no-reboot", argv);
        Assert.Contains("vhost-user-vsock-device,chardev=vsock", argv);
    }

    [Fact]
    public void The_qmp_and_vhost_user_sockets_lie_in_the_socket_directory_when_one_is_given()
    {
        Assert.Equal("unix:qmp.sock,server=on,wait=off", After(QemuCommandLine.Arguments(Spec, QemuAccelerator.Tcg), "-qmp"));
        Assert.Equal("socket,id=vsock,path=vhost-vsock.sock", After(QemuCommandLine.Arguments(Spec, QemuAccelerator.Tcg), "-chardev"));

        ImmutableArray<string> jailed = QemuCommandLine.Arguments(Spec, QemuAccelerator.Tcg, socketDirectory: QemuMachine.JailedSocketDirectory);

        Assert.Equal("unix:vmm/qmp.sock,server=on,wait=off", After(jailed, "-qmp"));
        Assert.Equal("socket,id=vsock,path=vmm/vhost-vsock.sock", After(jailed, "-chardev"));
    }

    [Theory]
    [InlineData(QemuAccelerator.Tcg)]
    [InlineData(QemuAccelerator.Kvm)]
    public void Every_guest_runs_under_qemus_seccomp_sandbox_without_privileges_spawning_or_resource_control(QemuAccelerator accelerator)
    {
        ImmutableArray<string> argv = QemuCommandLine.Arguments(Spec, accelerator);
        Assert.Equal("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", After(argv, "-sandbox"));
    }

    [Fact]
    public void A_root_drive_is_the_first_block_device_and_the_kernel_mounts_it_read_only_as_vda()
    {
        MachineSpec spec = Spec with
        {
            Boot = new BootSource("/k/vmlinux", null, "quiet"),
            Drives = [new Drive("stub0", "/d/stub0"), new Drive("root", "/i/rootfs.ext4", IsRoot: true, IsReadOnly: true)],
        };

        ImmutableArray<string> argv = QemuCommandLine.Arguments(spec, QemuAccelerator.Tcg);

        string[] devices = [.. argv.Where(a => a.StartsWith("virtio-blk-device,", StringComparison.Ordinal))];
        Assert.Equal(["virtio-blk-device,drive=root,serial=root", "virtio-blk-device,drive=stub0,serial=stub0"], devices);
        Assert.Contains("driver=file,node-name=root-file,filename=/i/rootfs.ext4,read-only=on,cache.direct=off", argv);
        Assert.DoesNotContain("-initrd", argv);
        Assert.EndsWith(" root=/dev/vda ro quiet", After(argv, "-append"), StringComparison.Ordinal);
        Assert.Contains(" root=PARTUUID=1234-01 rw ", QemuCommandLine.KernelArgs(
            spec with { Drives = [new Drive("root", "/i/disk", IsRoot: true, PartUuid: "1234-01")] }, QemuAccelerator.Kvm), StringComparison.Ordinal);
    }

    [Fact]
    public void A_translation_cache_size_bounds_tcg_and_is_left_out_under_kvm()
    {
        Assert.Equal("tcg,thread=multi,tb-size=32", After(QemuCommandLine.Arguments(Spec, QemuAccelerator.Tcg, 32), "-accel"));
        Assert.Equal("kvm", After(QemuCommandLine.Arguments(Spec, QemuAccelerator.Kvm, 32), "-accel"));
        Assert.Throws<ArgumentOutOfRangeException>(() => QemuCommandLine.Arguments(Spec, QemuAccelerator.Tcg, -1));
    }

    [Fact]
    public void A_balloon_gets_free_page_reporting_only_when_asked_for()
    {
        ImmutableArray<string> plain = QemuCommandLine.Arguments(Spec with { Balloon = new BalloonDevice(0, DeflateOnOom: true) }, QemuAccelerator.Tcg);
        ImmutableArray<string> reporting = QemuCommandLine.Arguments(
            Spec with { Balloon = new BalloonDevice(0, DeflateOnOom: false, FreePageReporting: true) }, QemuAccelerator.Tcg);

        Assert.Contains("virtio-balloon-device,id=balloon,deflate-on-oom=on", plain);
        Assert.Contains("virtio-balloon-device,id=balloon,deflate-on-oom=off,free-page-reporting=on", reporting);
    }

    [Fact]
    public void Drive_paths_with_commas_are_escaped_and_read_only_is_kept()
    {
        ImmutableArray<string> argv = QemuCommandLine.Arguments(Spec, QemuAccelerator.Tcg);
        Assert.Contains("driver=file,node-name=stub0-file,filename=/d/stub,,0,read-only=on,cache.direct=off", argv);
        Assert.Contains("virtio-blk-device,drive=stub0,serial=stub0", argv);
    }

    private static string After(ImmutableArray<string> argv, string flag) => argv[argv.IndexOf(flag) + 1];
}
