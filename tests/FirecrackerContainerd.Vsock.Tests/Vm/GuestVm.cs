using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.TestSupport;

namespace FirecrackerContainerd.Vsock.Tests.Vm;

/// <summary>A QEMU microVM (TCG) whose vsock is served by an in-process <see cref="VhostUserVsockDevice"/>,
/// running the test services of <see cref="GuestScript"/>. Disposing stops QEMU (QMP quit, then kill),
/// stops the device and removes the working directory.</summary>
internal sealed class GuestVm : IAsyncDisposable
{
    public const ulong GuestCid = 3;
    public const uint EchoPort = 10789;
    public const uint HashPort = 10790;
    public const uint SendZerosPort = 10791;
    private const string ReadyMarker = "fc-test-ready";

    /// <summary>Guest services: echo, a SHA-256 sink, and "send N zero bytes to host port P" (it reads
    /// "P N\n" and connects to CID 2 port P). Scripts go through files because socat splits its
    /// address arguments at ':'.</summary>
    public const string GuestScript = """
        cat > /run/send-zeros <<'EOF'
        #!/bin/sh
        read port count
        head -c "$count" /dev/zero | socat -t 30 - "VSOCK-CONNECT:2:$port"
        EOF
        chmod +x /run/send-zeros
        socat VSOCK-LISTEN:10789,reuseaddr,fork EXEC:cat &
        socat -t 30 VSOCK-LISTEN:10790,reuseaddr,fork EXEC:sha256sum &
        socat VSOCK-LISTEN:10791,reuseaddr,fork EXEC:/run/send-zeros &
        sleep 1
        echo fc-test-ready
        sleep 100000
        """;

    private readonly CancellationTokenSource _deviceStop = new();
    private Task _deviceRun = Task.CompletedTask;
    private Process? _qemu;

    private GuestVm(string directory)
    {
        Directory = directory;
    }

    public string Directory { get; }

    public string UdsPath => Path.Combine(Directory, "v.sock");

    public string VhostSocketPath => Path.Combine(Directory, "vhost.sock");

    public string QmpPath => Path.Combine(Directory, "qmp.sock");

    public string SerialPath => Path.Combine(Directory, "serial.log");

    /// <summary>Wall time from starting QEMU to the guest's /init reporting ready.</summary>
    public TimeSpan BootToInit { get; private set; }

    public static async Task<GuestVm> StartAsync(GuestImage image)
    {
        string qemuBinary = FindQemu();
        string directory = Path.Combine("/tmp", "fcvs-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(directory);
        var vm = new GuestVm(directory);
        try
        {
            await vm.BootAsync(qemuBinary, image);
            return vm;
        }
        catch
        {
            await vm.DisposeAsync();
            throw;
        }
    }

    private static string FindQemu()
    {
        string? qemu = ExecutableLookup.Find("qemu-system-x86_64");
        Assert.True(qemu is not null, "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86); the vsock VM tests need it");
        return qemu;
    }

    private async Task BootAsync(string qemuBinary, GuestImage image)
    {
        var device = new VhostUserVsockDevice(new VhostUserVsockOptions(VhostSocketPath, UdsPath, GuestCid));
        _deviceRun = Task.Run(() => device.RunAsync(_deviceStop.Token));
        await WaitForAsync(() => File.Exists(VhostSocketPath) || _deviceRun.IsCompleted, TimeSpan.FromSeconds(10), "the vhost-user socket");
        if (_deviceRun.IsCompleted)
        {
            await _deviceRun;
        }
        string script = Convert.ToBase64String(Encoding.UTF8.GetBytes(GuestScript.Replace("\r", "", StringComparison.Ordinal) + "\n"));
        var start = new ProcessStartInfo(qemuBinary)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in new[]
        {
            "-M", "microvm,acpi=on,memory-backend=mem", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-m", "512", "-smp", "2", "-nographic", "-no-reboot", "-monitor", "none",
            "-serial", $"file:{SerialPath}",
            "-qmp", $"unix:{QmpPath},server=on,wait=off",
            "-global", "virtio-mmio.force-legacy=false",
            "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
            "-chardev", $"socket,id=vsock0,path={VhostSocketPath}",
            "-device", "vhost-user-vsock-device,chardev=vsock0",
            "-kernel", image.Kernel, "-initrd", image.Initrd,
            "-append", $"console=ttyS0 reboot=t panic=-1 tsc_early_khz=2000000 quiet fc.init64={script}",
        })
        {
            start.ArgumentList.Add(arg);
        }
        var clock = Stopwatch.StartNew();
        _qemu = Process.Start(start)!;
        _qemu.StandardInput.Close();
        Task<string> stderr = _qemu.StandardError.ReadToEndAsync();
        _ = _qemu.StandardOutput.ReadToEndAsync();
        await WaitForAsync(() => _qemu.HasExited || Serial().Contains(ReadyMarker, StringComparison.Ordinal),
            TimeSpan.FromSeconds(90), $"'{ReadyMarker}' on the guest serial console");
        if (_qemu.HasExited)
        {
            Assert.Fail($"QEMU exited with {_qemu.ExitCode}: {await stderr}\nserial:\n{Serial()}");
        }
        BootToInit = clock.Elapsed;
    }

    /// <summary>The guest serial console so far.</summary>
    public string Serial()
    {
        try
        {
            using var stream = new FileStream(SerialPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
        catch (FileNotFoundException)
        {
            return "";
        }
    }

    /// <summary>Host-initiated connection through the hybrid socket: CONNECT, then the OK line. Retries
    /// while the guest is not listening yet, as Firecracker clients do.</summary>
    public async Task<(Socket Socket, uint HostPort)> ConnectAsync(uint port, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(UdsPath), cancellationToken);
                await socket.SendAsync(Encoding.ASCII.GetBytes($"CONNECT {port}\n"), cancellationToken);
                string line = await ReadLineAsync(socket, cancellationToken);
                if (line.StartsWith("OK ", StringComparison.Ordinal))
                {
                    return (socket, uint.Parse(line[3..], CultureInfo.InvariantCulture));
                }
            }
            catch (SocketException) when (deadline.Elapsed < TimeSpan.FromSeconds(20))
            {
            }
            socket.Dispose();
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(20), $"CONNECT {port} through {UdsPath} was never acknowledged\nserial:\n{Serial()}");
            await Task.Delay(200, cancellationToken);
        }
    }

    /// <summary>Reads one '\n'-terminated line byte by byte (so no stream bytes are consumed); "" at end of stream.</summary>
    public static async Task<string> ReadLineAsync(Socket socket, CancellationToken cancellationToken)
    {
        var line = new StringBuilder();
        byte[] one = new byte[1];
        while (await socket.ReceiveAsync(one, cancellationToken) == 1 && one[0] != (byte)'\n')
        {
            line.Append((char)one[0]);
            Assert.True(line.Length < 256, "line too long");
        }
        return line.ToString();
    }

    private static async Task WaitForAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < timeout, $"timed out after {timeout.TotalSeconds} s waiting for {what}");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_qemu is not null)
        {
            if (!_qemu.HasExited)
            {
                await QuitThroughQmpAsync();
            }
            using var exit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _qemu.WaitForExitAsync(exit.Token);
            }
            catch (OperationCanceledException)
            {
                _qemu.Kill(entireProcessTree: true);
                await _qemu.WaitForExitAsync();
            }
            _qemu.Dispose();
        }
        // QEMU's disconnect ends the device; cancelling covers a VM that never connected.
        await _deviceStop.CancelAsync();
        await _deviceRun.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _deviceStop.Dispose();
        Assert.True(_deviceRun.IsCompleted, "the vsock device did not stop");
        Assert.False(File.Exists(UdsPath), $"{UdsPath} was left behind");
        Assert.False(File.Exists(VhostSocketPath), $"{VhostSocketPath} was left behind");
        System.IO.Directory.Delete(Directory, recursive: true);
    }

    /// <summary>Runs QMP commands (e.g. <c>stop</c>, <c>cont</c>) on one QMP connection and fails with QEMU's error.</summary>
    public async Task QmpAsync(CancellationToken cancellationToken, params string[] commands)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(QmpPath), cancellationToken);
        await ReadLineAsync(socket, cancellationToken);
        foreach (string command in commands.Prepend("qmp_capabilities"))
        {
            await socket.SendAsync(System.Text.Encoding.ASCII.GetBytes($"{{\"execute\":\"{command}\"}}\n"), cancellationToken);
            // Events (STOP, RESUME, ...) may come before the answer.
            string line;
            do
            {
                line = await ReadLineAsync(socket, cancellationToken);
            }
            while (line.Contains("\"event\"", StringComparison.Ordinal));
            Assert.True(line.Contains("\"return\"", StringComparison.Ordinal), $"QMP {command}: {line}");
        }
    }

    private async Task QuitThroughQmpAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await QmpAsync(timeout.Token, "quit");
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or Xunit.Sdk.XunitException)
        {
            // The kill below takes over.
        }
    }
}
