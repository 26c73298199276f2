using FirecrackerContainerd.Vmm.Qemu;
using FirecrackerContainerd.Vmm.Selection;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>The QEMU accelerator choice builds on the device check: no boot is tried without a KVM device that answers.</summary>
public sealed class KvmBootProbeTests
{
    [Fact]
    public async Task A_failing_device_check_gives_TCG_with_its_reason_without_booting_anything()
    {
        using var dir = new TempDir();
        var probe = new KvmBootProbe(dir.Path, qemuBinary: "/nonexistent/qemu", device: new RefusingDevice());

        AcceleratorVerdict verdict = await probe.DecideAsync("/nonexistent/vmlinuz", "/nonexistent/initrd", CancellationToken.None);

        Assert.Equal(QemuAccelerator.Tcg, verdict.Accelerator);
        Assert.Equal("/dev/kvm cannot be opened read-write: No such file or directory: using TCG", verdict.Reason);
        Assert.False(verdict.FromCache);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    private sealed class RefusingDevice : IKvmProbe
    {
        public Task<KvmVerdict> ProbeAsync(CancellationToken cancellationToken) =>
            Task.FromResult(new KvmVerdict(false, "/dev/kvm cannot be opened read-write: No such file or directory"));
    }
}
