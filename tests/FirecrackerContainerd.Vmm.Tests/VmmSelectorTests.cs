using FirecrackerContainerd.Vmm.Selection;

namespace FirecrackerContainerd.Vmm.Tests;

public class VmmSelectorTests
{
    private sealed class FixedProbe(bool works) : IKvmProbe
    {
        public int Calls { get; private set; }

        public Task<KvmVerdict> ProbeAsync(CancellationToken cancellationToken)
        {
            Calls++;
            return Task.FromResult(new KvmVerdict(works, works ? "probe boot succeeded" : "probe boot hit an emulation failure"));
        }
    }

    private static readonly Func<string, string?> Found = _ => "/usr/bin/firecracker";
    private static readonly Func<string, string?> Missing = _ => null;

    [Fact]
    public async Task Firecracker_is_chosen_when_its_binary_exists_and_kvm_works()
    {
        var choice = await new VmmSelector(new FixedProbe(true), Found).SelectAsync("auto", "firecracker", default);

        Assert.Equal(VmmKind.Firecracker, choice.Kind);
        Assert.Contains("/usr/bin/firecracker", choice.Reason, StringComparison.Ordinal);
        Assert.Contains("probe boot succeeded", choice.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Qemu_is_chosen_when_the_binary_is_missing_without_probing_kvm()
    {
        var probe = new FixedProbe(true);

        var choice = await new VmmSelector(probe, Missing).SelectAsync("auto", "firecracker", default);

        Assert.Equal(VmmKind.Qemu, choice.Kind);
        Assert.Contains("not found", choice.Reason, StringComparison.Ordinal);
        Assert.Equal(0, probe.Calls);
    }

    [Fact]
    public async Task Qemu_is_chosen_when_kvm_does_not_work_and_the_reason_is_returned_and_logged()
    {
        var logger = new ListLogger();

        var choice = await new VmmSelector(new FixedProbe(false), Found, logger).SelectAsync("auto", "firecracker", default);

        Assert.Equal(VmmKind.Qemu, choice.Kind);
        Assert.Contains("emulation failure", choice.Reason, StringComparison.Ordinal);
        Assert.Contains(logger.Entries, e => e.Message.Contains("Qemu", StringComparison.Ordinal) && e.Message.Contains("emulation failure", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_explicit_qemu_is_honoured_and_an_impossible_explicit_firecracker_fails()
    {
        Assert.Equal(VmmKind.Qemu, (await new VmmSelector(new FixedProbe(true), Found).SelectAsync("qemu", "firecracker", default)).Kind);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(
            () => new VmmSelector(new FixedProbe(false), Found).SelectAsync("firecracker", "firecracker", default));
        Assert.Contains("KVM does not work", e.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentException>(() => new VmmSelector(new FixedProbe(true), Found).SelectAsync("xen", "firecracker", default));
    }

    [Fact]
    public async Task The_dev_kvm_probe_explains_a_missing_device()
    {
        var verdict = await new KvmDeviceProbe("/nonexistent/kvm").ProbeAsync(default);

        Assert.False(verdict.Works);
        Assert.Contains("/nonexistent/kvm", verdict.Reason, StringComparison.Ordinal);
    }
}
