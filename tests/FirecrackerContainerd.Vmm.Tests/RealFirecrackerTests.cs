using System.Collections.Immutable;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Firecracker;
using FirecrackerContainerd.Vmm.Firecracker.Api;
using FirecrackerContainerd.Vmm.Launch;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Selection;

namespace FirecrackerContainerd.Vmm.Tests;

/// <summary>
/// The driver against the real <c>firecracker</c> (on PATH or in FIRECRACKER_BIN) with a working KVM.
/// Where either is missing these tests FAIL with the reason; a test run that cannot provide them
/// excludes the category (<c>--filter "Category!=RealFirecracker"</c>) and reports it as not run.
/// With FIRECRACKER_KERNEL (and optionally FIRECRACKER_INITRD) set, a guest is booted and stopped.
/// </summary>
[Trait("Category", "RealFirecracker")]
public class RealFirecrackerTests
{
    [Fact]
    public async Task Real_firecracker_accepts_the_drivers_configuration()
    {
        var binary = await RequireFirecrackerAsync();
        using var dir = new TempDir();
        var vmDir = Directory.CreateDirectory(dir.Combine("default#real1")).FullName;
        await using var process = await VmmProcess.StartAsync(
            "real1", new VmmLaunch(binary, [.. FirecrackerMachine.FirecrackerArguments()], vmDir), new ListLogger(), default);
        using var api = new FirecrackerApiClient("real1", Path.Combine(vmDir, WellKnownNames.FirecrackerSockName), TimeSpan.FromSeconds(5));
        for (var i = 0; i < 300 && !File.Exists(api.SocketPath); i++)
        {
            await Task.Delay(10);
        }

        await api.PutMachineConfigAsync(new ApiMachineConfiguration(2, 256, false), default);
        await api.PutDriveAsync(new ApiDrive("stub0", false, dir.File("stub0"), false, null, ApiCacheType.Unsafe, null), default);
        await api.PutVsockAsync(new ApiVsock(3, WellKnownNames.FirecrackerVSockName), default);
        var info = await api.DescribeInstanceAsync(default);
        var config = await api.GetMachineConfigAsync(default);

        Assert.Equal("Not started", info.State);
        Assert.Equal(256, config.MemSizeMib);
        var e = await Assert.ThrowsAsync<FirecrackerApiException>(() => api.PatchDriveAsync(new ApiPartialDrive("stub0", "/x"), default));
        Assert.Equal("PATCH", e.Method);
        Assert.NotEmpty(e.FaultMessage);
    }

    [Fact]
    public async Task Real_firecracker_boots_and_stops_a_guest_when_a_kernel_is_given()
    {
        var binary = await RequireFirecrackerAsync();
        var kernel = Environment.GetEnvironmentVariable("FIRECRACKER_KERNEL");
        Assert.True(kernel is not null && File.Exists(kernel),
            "set FIRECRACKER_KERNEL to an uncompressed vmlinux (tools/image-builder extracts one) to boot a guest under the real firecracker");
        using var dir = new TempDir();
        var vmDir = new VmDir(Directory.CreateDirectory(dir.Combine("default#real2")).FullName);
        var spec = new MachineSpec(
            "real2",
            new BootSource(kernel!, Environment.GetEnvironmentVariable("FIRECRACKER_INITRD"), "console=ttyS0 reboot=k panic=1 pci=off"),
            new MachineConfig(1, 256),
            ImmutableArray<Drive>.Empty,
            new VsockDevice(3, WellKnownNames.FirecrackerVSockName));
        await using var machine = new FirecrackerMachine(spec, vmDir, new FirecrackerOptions { FirecrackerBinary = binary }, new ListLogger());

        await machine.StartAsync(default);
        Assert.Equal(MachineState.Running, await machine.GetStateAsync(default));
        var exit = await machine.StopAsync(TimeSpan.FromSeconds(10), default);

        Assert.True(exit.ExitCode == 0 || exit.Killed, $"unexpected exit {exit}");
    }

    private static async Task<string> RequireFirecrackerAsync()
    {
        var configured = Environment.GetEnvironmentVariable("FIRECRACKER_BIN") ?? "firecracker";
        var binary = ExecutableLookup.Find(configured);
        Assert.True(binary is not null,
            $"NOT RUN: no firecracker binary (\"{configured}\" not found; set FIRECRACKER_BIN or put firecracker on PATH). " +
            "Exclude this category with --filter \"Category!=RealFirecracker\" on hosts without it.");
        var verdict = await new KvmDeviceProbe().ProbeAsync(default);
        Assert.True(verdict.Works, $"NOT RUN: firecracker found at {binary}, but KVM does not work: {verdict.Reason}");
        return binary!;
    }
}
