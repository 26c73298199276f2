using System.Collections.Immutable;
using System.Text;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>The QEMU driver booting the real guest kernel and initramfs under TCG.</summary>
[Trait("Category", "Vm")]
public sealed class QemuMachineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fc-qemu-").FullName;
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(4));

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Boots_the_guest_pauses_resumes_and_observes_its_poweroff()
    {
        QemuBinary.Require();
        GuestImage image = await GuestImage.BuildAsync(agent: null, _timeout.Token);
        // The guest prints a marker, sleeps so the test can pause and resume it, prints again and powers off.
        string script = "echo guest-says-hello; sleep 3; echo guest-says-bye";
        var spec = new MachineSpec(
            "vm1",
            new BootSource(image.Kernel, image.Initrd, "reboot=k panic=-1 fc.init64=" + Convert.ToBase64String(Encoding.ASCII.GetBytes(script))),
            new MachineConfig(1, 256),
            ImmutableArray<Drive>.Empty);
        var console = new ConsoleLog();
        await using var machine = new QemuMachine(spec, new VmDir(Path.Combine(_dir, "ns#vm1")), new QemuOptions(), console);

        await machine.StartAsync(_timeout.Token);
        Assert.Equal(MachineState.Running, await machine.GetStateAsync(_timeout.Token));
        await console.WaitForAsync("guest-says-hello", _timeout.Token);

        await machine.PauseAsync(_timeout.Token);
        Assert.Equal(MachineState.Paused, await machine.GetStateAsync(_timeout.Token));
        await machine.ResumeAsync(_timeout.Token);
        Assert.Equal(MachineState.Running, await machine.GetStateAsync(_timeout.Token));

        await console.WaitForAsync("guest-says-bye", _timeout.Token);
        VmExit exit = await machine.Exited.WaitAsync(_timeout.Token);
        Assert.True(exit.IsClean, $"QEMU exited with {exit.ExitCode}, killed={exit.Killed}\n{console}");
        Assert.False(File.Exists(machine.QmpSocketPath) && IsListening(machine.QmpSocketPath));

        // The machine keeps the console's last lines for error messages, in order and ending with the power-off.
        IReadOnlyList<string> recent = machine.RecentOutput();
        int hello = recent.ToList().FindIndex(line => line.Contains("guest-says-hello", StringComparison.Ordinal));
        int bye = recent.ToList().FindIndex(line => line.Contains("guest-says-bye", StringComparison.Ordinal));
        Assert.True(hello >= 0 && bye > hello, $"recent output:\n{string.Join('\n', recent)}");
        Assert.InRange(recent.Count, 3, 64);
    }

    [Fact]
    public async Task Stop_ends_a_guest_that_ignores_the_power_button()
    {
        QemuBinary.Require();
        GuestImage image = await GuestImage.BuildAsync(agent: null, _timeout.Token);
        var spec = new MachineSpec(
            "vm2",
            new BootSource(image.Kernel, image.Initrd, "reboot=k panic=-1 fc.init64=" + Convert.ToBase64String("echo stubborn; sleep 600"u8.ToArray())),
            new MachineConfig(1, 256),
            ImmutableArray<Drive>.Empty);
        var console = new ConsoleLog();
        var vmDir = new VmDir(Path.Combine(_dir, "ns#vm2"));
        await using var machine = new QemuMachine(spec, vmDir, new QemuOptions(), console);
        await machine.StartAsync(_timeout.Token);
        await console.WaitForAsync("stubborn", _timeout.Token);

        VmExit exit = await machine.StopAsync(TimeSpan.FromSeconds(2), _timeout.Token);
        Assert.Equal(exit, await machine.Exited);
        await machine.DisposeAsync();
        Assert.Empty(Directory.GetFileSystemEntries(vmDir.RootPath));
    }

    [Fact]
    public async Task Start_fails_clearly_when_the_kernel_is_missing()
    {
        var spec = new MachineSpec("vm3", new BootSource(Path.Combine(_dir, "no-kernel")), new MachineConfig(1, 128), ImmutableArray<Drive>.Empty);
        await using var machine = new QemuMachine(spec, new VmDir(Path.Combine(_dir, "ns#vm3")), new QemuOptions(), new ConsoleLog());
        var e = await Assert.ThrowsAsync<InvalidMachineSpecException>(() => machine.StartAsync(_timeout.Token));
        Assert.Contains("no-kernel", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_fails_naming_the_exit_and_qemus_words_when_qemu_cannot_open_a_network_device()
    {
        // A TUN (layer 3) device where QEMU wants a TAP: QEMU listens on QMP, then fails to attach and exits.
        string tun = $"fcqt{Environment.ProcessId % 100000}";
        await RunIpAsync("tuntap", "add", "dev", tun, "mode", "tun");
        try
        {
            string kernel = Path.Combine(_dir, "kernel");
            await File.WriteAllBytesAsync(kernel, new byte[4096], _timeout.Token);
            var spec = new MachineSpec("vm4", new BootSource(kernel), new MachineConfig(1, 128), ImmutableArray<Drive>.Empty,
                NetworkInterfaces: [new NetworkInterface("eth0", tun)]);
            await using var machine = new QemuMachine(spec, new VmDir(Path.Combine(_dir, "ns#vm4")), new QemuOptions(), new ConsoleLog());

            var e = await Assert.ThrowsAsync<IOException>(() => machine.StartAsync(_timeout.Token));

            Assert.Contains("QEMU exited with status 1 before its QMP socket answered", e.Message, StringComparison.Ordinal);
            Assert.Contains(tun, e.Message, StringComparison.Ordinal);
        }
        finally
        {
            await RunIpAsync("link", "del", tun);
        }
    }

    private static async Task RunIpAsync(params string[] args)
    {
        using var ip = System.Diagnostics.Process.Start("ip", args);
        await ip.WaitForExitAsync();
        Assert.True(ip.ExitCode == 0, $"ip {string.Join(' ', args)} failed with {ip.ExitCode}");
    }

    private static bool IsListening(string path)
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        try
        {
            socket.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }
}
