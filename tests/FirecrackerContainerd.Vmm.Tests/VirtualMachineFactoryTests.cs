using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Firecracker;
using FirecrackerContainerd.Vmm.Firecracker.Jailer;
using FirecrackerContainerd.Vmm.Jail;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;
using FirecrackerContainerd.Vmm.Selection;

namespace FirecrackerContainerd.Vmm.Tests;

/// <summary>The factory against fake VMM programs: which machine it builds, and what it probes and caches on the way.</summary>
public sealed class VirtualMachineFactoryTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string CacheDirectory => _dir.Combine("cache");

    private string QemuRuns => _dir.Combine("qemu-runs");

    [Fact]
    public async Task Firecracker_is_built_when_its_binary_exists_and_kvm_works()
    {
        var factory = new VirtualMachineFactory(Settings("auto", firecracker: Program("firecracker")), new FixedKvm(works: true));

        await using IVirtualMachine machine = await factory.CreateAsync(TestSpecs.Minimal(_dir), VmDirectory(), new ListLogger(), default);

        Assert.IsType<FirecrackerMachine>(machine);
        Assert.Equal(_dir.Combine("ns#vm1", WellKnownNames.FirecrackerSockName), machine.ControlSocketPath);
        Assert.False(File.Exists(QemuRuns));
    }

    [Fact]
    public async Task Firecracker_with_jail_settings_is_built_to_start_through_its_jailer()
    {
        var jail = new JailSettings(904_000, 4, _dir.Combine("jail"), "firecracker-containerd", 64, 0, 512, "/unused", "/unused") { JailerBinary = Program("jailer") };
        var factory = new VirtualMachineFactory(Settings("auto", firecracker: Program("firecracker")) with { Jail = jail }, new FixedKvm(works: true));

        await using IVirtualMachine machine = await factory.CreateAsync(TestSpecs.Minimal(_dir), VmDirectory(), new ListLogger(), default);

        var firecracker = Assert.IsType<FirecrackerMachine>(machine);
        Assert.Equal(JailerId.For("ns#vm1"), firecracker.JailerIdentity);
        Assert.Equal(_dir.Combine("jail", "firecracker", firecracker.JailerIdentity!, "root", WellKnownNames.FirecrackerSockName), machine.ControlSocketPath);
    }

    [Fact]
    public async Task Qemu_under_TCG_is_built_without_a_probe_boot_when_the_kvm_device_fails()
    {
        var factory = new VirtualMachineFactory(Settings("auto", firecracker: Program("firecracker")), new FixedKvm(works: false));
        var logger = new ListLogger();

        await using IVirtualMachine machine = await factory.CreateAsync(TestSpecs.Minimal(_dir), VmDirectory(), logger, default);

        Assert.Equal(QemuAccelerator.Tcg, Assert.IsType<QemuMachine>(machine).Accelerator);
        Assert.Equal(_dir.Combine("ns#vm1", QemuCommandLine.QmpSocketName), machine.ControlSocketPath);
        Assert.False(File.Exists(QemuRuns));
        Assert.False(Directory.Exists(CacheDirectory));
        Assert.Contains(logger.Entries, e => e.Message.Contains("Qemu selected", StringComparison.Ordinal) && e.Message.Contains(FixedKvm.Refusal, StringComparison.Ordinal));
        Assert.Contains(logger.Entries, e => e.Message.Contains("QEMU accelerator Tcg (measured)", StringComparison.Ordinal) && e.Message.Contains(FixedKvm.Refusal, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_probe_boot_that_fails_gives_TCG_and_its_verdict_is_kept_in_the_cache_directory()
    {
        MachineSpec spec = TestSpecs.Minimal(_dir);
        VmmSettings settings = Settings("qemu");
        var logger = new ListLogger();

        await using (IVirtualMachine first = await new VirtualMachineFactory(settings, new FixedKvm(works: true)).CreateAsync(spec, VmDirectory(), logger, default))
        {
            Assert.Equal(QemuAccelerator.Tcg, Assert.IsType<QemuMachine>(first).Accelerator);
        }

        await using (IVirtualMachine second = await new VirtualMachineFactory(settings, new FixedKvm(works: true)).CreateAsync(spec, VmDirectory(), logger, default))
        {
            Assert.Equal(QemuAccelerator.Tcg, Assert.IsType<QemuMachine>(second).Accelerator);
        }

        // The fake QEMU ran once, for the first probe; the second factory read the verdict back.
        Assert.Single(File.ReadAllLines(QemuRuns));
        Assert.Single(Directory.GetFiles(CacheDirectory, "kvm-probe-*.json"));
        Assert.Contains(logger.Entries, e => e.Message.Contains("QEMU accelerator Tcg (measured): QEMU could not start under KVM", StringComparison.Ordinal));
        Assert.Contains(logger.Entries, e => e.Message.Contains("QEMU accelerator Tcg (cached): QEMU could not start under KVM", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Qemu_without_an_initrd_runs_under_TCG_without_a_probe_boot()
    {
        var spec = TestSpecs.Minimal(_dir) with { Boot = new BootSource(_dir.File("vmlinux")) };

        await using IVirtualMachine machine = await new VirtualMachineFactory(Settings("qemu"), new FixedKvm(works: true))
            .CreateAsync(spec, VmDirectory(), new ListLogger(), default);

        Assert.Equal(QemuAccelerator.Tcg, Assert.IsType<QemuMachine>(machine).Accelerator);
        Assert.False(File.Exists(QemuRuns));
    }

    [Fact]
    public async Task An_explicit_firecracker_whose_binary_is_missing_fails_naming_it()
    {
        string missing = _dir.Combine("no-firecracker");
        var factory = new VirtualMachineFactory(Settings("firecracker", firecracker: missing), new FixedKvm(works: true));

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => factory.CreateAsync(TestSpecs.Minimal(_dir), VmDirectory(), new ListLogger(), default));

        Assert.Contains($"\"{missing}\" is not an executable", e.Message, StringComparison.Ordinal);
    }

    private VmmSettings Settings(string vmm, string? firecracker = null) =>
        new(vmm, CacheDirectory, firecracker ?? _dir.Combine("no-firecracker"), FakeQemu());

    private VmDir VmDirectory() => new(_dir.Combine("ns#vm1"));

    // Records each run and exits at once, as a QEMU that cannot use KVM does.
    private string FakeQemu() => Program("qemu", $"echo run >> '{QemuRuns}'\nexit 1");

    private string Program(string name, string body = "exit 0")
    {
        string path = _dir.Combine(name);
        File.WriteAllText(path, $"#!/bin/sh\n{body}\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private sealed class FixedKvm(bool works) : IKvmProbe
    {
        public const string Refusal = "/dev/kvm refused by the test";

        public Task<KvmVerdict> ProbeAsync(CancellationToken cancellationToken) =>
            Task.FromResult(new KvmVerdict(works, works ? "/dev/kvm accepted by the test" : Refusal));
    }
}
