using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;
using FirecrackerContainerd.Vsock.Unix;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;

// Usage: FirecrackerContainerd.VmBench <image dir (with the agent)> [runs] [MiB per throughput stream]
if (args.Length < 1)
{
    Console.Error.WriteLine("usage: VmBench IMAGE_DIR [RUNS] [MIB]");
    return 2;
}

string image = args[0];
int runs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5;
int mib = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 256;
string kernel = Path.Combine(image, "vmlinuz");
string initrd = Path.Combine(image, "initrd.img");
string work = Directory.CreateTempSubdirectory("fc-vmbench-").FullName;
var dial = new HybridVsockDialOptions(TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(20), TimeSpan.FromSeconds(5));

try
{
    var bare = new List<double>();
    var ready = new List<double>();
    var memory = new List<double>();
    for (int run = 0; run < runs; run++)
    {
        bare.Add(await BareBootAsync(run));
        (double seconds, double hostMib) = await AgentBootAsync(run);
        ready.Add(seconds);
        memory.Add(hostMib);
        Console.Error.WriteLine($"run {run + 1}/{runs}: bare boot to /init {bare[^1]:0.00} s, boot to agent ready {ready[^1]:0.00} s, host memory {memory[^1]:0.0} MiB");
    }

    (double toGuest, double fromGuest) = await ThroughputAsync();
    Console.WriteLine($"microVM (QEMU TCG, 2 vCPU, 512 MiB), medians of {runs} runs:");
    Console.WriteLine($"  bare QEMU boot to /init         {Median(bare):0.00} s");
    Console.WriteLine($"  boot to agent ready (ours)      {Median(ready):0.00} s   ratio {Median(ready) / Median(bare):0.00}x of the bare boot");
    Console.WriteLine($"  host memory per VM              {Median(memory):0.0} MiB (QEMU anonymous+file RSS and this process's growth; guest RAM excluded)");
    Console.WriteLine($"  vsock host->guest               {toGuest:0.0} MiB/s ({mib} MiB)");
    Console.WriteLine($"  vsock guest->host               {fromGuest:0.0} MiB/s ({mib} MiB)");
    return 0;
}
finally
{
    Directory.Delete(work, recursive: true);
}

async Task<double> BareBootAsync(int run)
{
    var console = new Watch("fc-init: start");
    var spec = new MachineSpec($"bare{run}", new BootSource(kernel, initrd, "reboot=k panic=-1 fc.init64=" + B64("poweroff -f")),
        new MachineConfig(2, 512), ImmutableArray<Drive>.Empty);
    await using var machine = new QemuMachine(spec, new VmDir(Path.Combine(work, $"bare{run}")), new QemuOptions(), console);
    var clock = Stopwatch.StartNew();
    await machine.StartAsync(CancellationToken.None);
    await console.Seen.WaitAsync(TimeSpan.FromMinutes(2));
    return clock.Elapsed.TotalSeconds;
}

async Task<(double Seconds, double HostMib)> AgentBootAsync(int run)
{
    long before = Rss(Environment.ProcessId, "VmRSS");
    var vmDir = new VmDir(Path.Combine(work, $"agent{run}"));
    var spec = new MachineSpec($"agent{run}", new BootSource(kernel, initrd, "reboot=k panic=-1 quiet"),
        new MachineConfig(2, 512), ImmutableArray<Drive>.Empty, new VsockDevice(3, WellKnownNames.FirecrackerVSockName));
    await using var machine = new QemuMachine(spec, vmDir, new QemuOptions(), new Watch(null));
    var clock = Stopwatch.StartNew();
    await machine.StartAsync(CancellationToken.None);
    using Socket socket = await HybridVsockDialer.DialAsync(vmDir.FirecrackerVSockPath, WellKnownNames.AgentVsockPort, dial, CancellationToken.None);
    await using var client = new TtrpcClient(socket);
    await client.CallAsync("Agent", "Version", new Empty(), AgentVersion.Parser);
    double seconds = clock.Elapsed.TotalSeconds;
    int pid = machine.Pid!.Value;
    double hostMib = (Rss(pid, "RssAnon") + Rss(pid, "RssFile") + Math.Max(0, Rss(Environment.ProcessId, "VmRSS") - before)) / 1024.0;
    return (seconds, hostMib);
}

async Task<(double ToGuest, double FromGuest)> ThroughputAsync()
{
    long bytes = (long)mib << 20;
    string script = $"socat VSOCK-LISTEN:5001 SYSTEM:'cat > /dev/null' & socat VSOCK-LISTEN:5002 SYSTEM:'head -c {bytes} /dev/zero' & wait";
    var vmDir = new VmDir(Path.Combine(work, "throughput"));
    var spec = new MachineSpec("throughput", new BootSource(kernel, initrd, "reboot=k panic=-1 quiet fc.init64=" + B64(script)),
        new MachineConfig(2, 512), ImmutableArray<Drive>.Empty, new VsockDevice(3, WellKnownNames.FirecrackerVSockName));
    await using var machine = new QemuMachine(spec, vmDir, new QemuOptions(), new Watch(null));
    await machine.StartAsync(CancellationToken.None);

    byte[] chunk = new byte[256 * 1024];
    double toGuest;
    using (Socket sink = await HybridVsockDialer.DialAsync(vmDir.FirecrackerVSockPath, 5001, dial, CancellationToken.None))
    {
        var clock = Stopwatch.StartNew();
        for (long sent = 0; sent < bytes; sent += chunk.Length)
        {
            await sink.SendAsync(chunk, SocketFlags.None);
        }

        sink.Shutdown(SocketShutdown.Send);
        while (await sink.ReceiveAsync(chunk, SocketFlags.None) > 0)
        {
        }

        toGuest = mib / clock.Elapsed.TotalSeconds;
    }

    using Socket source = await HybridVsockDialer.DialAsync(vmDir.FirecrackerVSockPath, 5002, dial, CancellationToken.None);
    var watch = Stopwatch.StartNew();
    long received = 0;
    int n;
    while ((n = await source.ReceiveAsync(chunk, SocketFlags.None)) > 0)
    {
        received += n;
    }

    if (received != bytes)
    {
        throw new InvalidDataException($"guest->host: received {received} of {bytes} bytes");
    }

    return (toGuest, mib / watch.Elapsed.TotalSeconds);
}

static string B64(string script) => Convert.ToBase64String(Encoding.ASCII.GetBytes(script));

static double Median(List<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
}

// kB from /proc/<pid>/status.
static long Rss(int pid, string field)
{
    foreach (string line in File.ReadLines($"/proc/{pid}/status"))
    {
        if (line.StartsWith(field + ":", StringComparison.Ordinal))
        {
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }
    }

    return 0;
}

/// <summary>A logger that completes when a console line contains a text.</summary>
internal sealed class Watch(string? text) : ILogger
{
    private readonly TaskCompletionSource _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Seen => _seen.Task;

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (text is not null && formatter(state, exception).Contains(text, StringComparison.Ordinal))
        {
            _seen.TrySetResult();
        }
    }
}
