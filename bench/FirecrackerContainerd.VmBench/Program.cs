using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Qemu;
using FirecrackerContainerd.Vsock.Unix;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;

// Usage: FirecrackerContainerd.VmBench <image dir> [<image dir>...] [--runs N] [--mib N]
// Each image directory (tools/image-builder/build with --agent) is measured in the same run, an image with a root drive
// (our kernel's) booted both from it and from its initramfs; the first is the baseline the others' ratios refer to.
var images = new List<string>();
int runs = 5;
int mib = 64;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--runs":
            runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
            break;
        case "--mib":
            mib = int.Parse(args[++i], CultureInfo.InvariantCulture);
            break;
        default:
            images.Add(args[i]);
            break;
    }
}

if (images.Count == 0 || runs < 1)
{
    Console.Error.WriteLine("usage: VmBench IMAGE_DIR [IMAGE_DIR...] [--runs N] [--mib N]");
    return 2;
}

string work = Directory.CreateTempSubdirectory("fc-vmbench-").FullName;
try
{
    var kernels = images.SelectMany(GuestKernel.Read).ToList();
    var results = kernels.Select(_ => new Figures()).ToList();
    for (int run = 0; run < runs; run++)
    {
        for (int k = 0; k < kernels.Count; k++)
        {
            var bench = new Boots(kernels[k], work, $"{k}-{run}");
            Figures f = results[k];
            (double wall, double uptime) = await bench.BareBootAsync();
            f.BareWall.Add(wall);
            f.BareUptime.Add(uptime);
            AgentBoot agent = await bench.AgentBootAsync(Boots.RuntimeMachine, reporting: false);
            f.Ready.Add(agent.ReadySeconds);
            f.HostMib.Add(agent.HostMib);
            f.IdlePercent.Add(agent.IdlePercent);
            f.TouchedMib.Add((await bench.AgentBootAsync(Boots.SmallMachine, reporting: false)).TouchedMib);
            f.ReportedMib.Add((await bench.AgentBootAsync(Boots.SmallMachine, reporting: true)).TouchedMib);
            Console.Error.WriteLine($"run {run + 1}/{runs}, {kernels[k].Name}: /init {wall:0.00} s (uptime {uptime:0.00} s), agent ready {agent.ReadySeconds:0.00} s, " +
                $"idle {agent.IdlePercent:0.0} %, touched {f.TouchedMib[^1]:0} MiB ({f.ReportedMib[^1]:0} MiB with free page reporting)");
        }
    }

    var throughput = new List<(double ToGuest, double FromGuest)>();
    foreach (GuestKernel kernel in kernels)
    {
        throughput.Add(await new Boots(kernel, work, "throughput").ThroughputAsync(mib));
    }

    var table = new Table(["", .. kernels.Select(k => $"{k.Name} ({k.Release})")]);
    table.Row("bare boot to /init, wall", results.Select(f => $"{Median(f.BareWall):0.00} s"));
    table.Row("  the kernel's uptime then", results.Select(f => $"{Median(f.BareUptime):0.00} s"));
    table.Row("boot to agent ready", results.Select(f => $"{Median(f.Ready):0.00} s"));
    table.Row("idle CPU per guest, 10 s", results.Select(f => $"{Median(f.IdlePercent):0.0} % of a core"));
    table.Row("guest RAM touched after boot", results.Select(f => $"{Median(f.TouchedMib):0} MiB"));
    table.Row("  with free page reporting", results.Select(f => $"{Median(f.ReportedMib):0} MiB"));
    table.Row("host memory per VM", results.Select(f => $"{Median(f.HostMib):0} MiB"));
    table.Row("vsock host->guest", throughput.Select(t => $"{t.ToGuest:0} MiB/s"));
    table.Row("vsock guest->host", throughput.Select(t => $"{t.FromGuest:0} MiB/s"));
    Console.WriteLine($"microVMs under QEMU TCG with {Boots.RuntimeMachine.VcpuCount} vCPUs, medians of {runs} runs:");
    Console.Write(table);
    Console.WriteLine($"""
          boots and idle: {Boots.RuntimeMachine.MemSizeMib} MiB guests, as the runtime makes them; idle: QEMU's CPU time while the agent waits.
          RAM touched: {Boots.SmallMachine.MemSizeMib} MiB guests, the guest memory QEMU holds {Boots.Settle.TotalSeconds:0} s after the agent answered (its RssShmem).
          host memory: QEMU's anonymous and file RSS plus the vsock device's share of this process, guest RAM excluded.
          vsock: {mib} MiB each way.
        """);
    return 0;
}
finally
{
    Directory.Delete(work, recursive: true);
}

static double Median(List<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
}

/// <summary>
/// One way to boot a guest image: its kernel (the ELF vmlinux, booted through PVH) with its initramfs, or with its
/// read-only root drive and no initramfs, and what its manifest says.
/// </summary>
internal sealed record GuestKernel(string Name, string Release, string Kernel, string Initrd, string? RootDrive)
{
    /// <summary>The image's boots: from its root drive when it has one, then from its initramfs.</summary>
    public static IEnumerable<GuestKernel> Read(string image)
    {
        using JsonDocument manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(image, "manifest.json")));
        string kind = manifest.RootElement.TryGetProperty("kernel", out JsonElement k) ? k.GetString() ?? "?" : "debian";
        string release = manifest.RootElement.GetProperty("kernelRelease").GetString() ?? "?";
        string name = kind == "ours" ? "ours" : "Debian";
        var initramfs = new GuestKernel(name, release, Path.Combine(image, "vmlinux"), Path.Combine(image, "initrd.img"), null);
        string rootDrive = Path.Combine(image, "rootfs.ext4");
        return File.Exists(rootDrive)
            ? [initramfs with { Name = name + ", root drive", RootDrive = rootDrive }, initramfs with { Name = name + ", initramfs" }]
            : [initramfs];
    }

    /// <summary>The boot source of a guest with <paramref name="args"/>: the initramfs unless a root drive boots it.</summary>
    public BootSource Boot(string args) => new(Kernel, RootDrive is null ? Initrd : null, args);

    /// <summary>The drives every boot has: the root drive, if any.</summary>
    public ImmutableArray<Drive> Drives => RootDrive is null ? [] : [new Drive("root", RootDrive, IsRoot: true, IsReadOnly: true)];
}

/// <summary>Every sample of one kernel.</summary>
internal sealed class Figures
{
    public List<double> BareWall { get; } = [];

    public List<double> BareUptime { get; } = [];

    public List<double> Ready { get; } = [];

    public List<double> HostMib { get; } = [];

    public List<double> IdlePercent { get; } = [];

    public List<double> TouchedMib { get; } = [];

    public List<double> ReportedMib { get; } = [];
}

/// <summary>What one boot to the agent measured.</summary>
internal sealed record AgentBoot(double ReadySeconds, double HostMib, double IdlePercent, double TouchedMib);

/// <summary>The boots of one kernel, each a QEMU machine as the runtime makes them.</summary>
internal sealed class Boots(GuestKernel kernel, string work, string tag)
{
    /// <summary>The runtime's default machine.</summary>
    public static readonly MachineConfig RuntimeMachine = new(2, 512);

    /// <summary>The machine the RAM figures use.</summary>
    public static readonly MachineConfig SmallMachine = new(2, 128);

    /// <summary>How long an idle guest is watched.</summary>
    public static readonly TimeSpan Idle = TimeSpan.FromSeconds(10);

    /// <summary>How long after the agent answered guest memory is counted: free page reporting waits 2 s before it reports.</summary>
    public static readonly TimeSpan Settle = TimeSpan.FromSeconds(5);

    private static readonly HybridVsockDialOptions Dial = new(TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(20), TimeSpan.FromSeconds(5));
    private static readonly Regex UptimeLine = new(@"fc-init: start uptime=([0-9.]+)", RegexOptions.CultureInvariant);
    private int _count;

    /// <summary>Wall time from QEMU's start to the guest's /init, and the kernel's uptime when /init ran.</summary>
    public async Task<(double Wall, double Uptime)> BareBootAsync()
    {
        var console = new Watch(UptimeLine);
        var spec = new MachineSpec(Id("bare"), kernel.Boot("reboot=k panic=-1 quiet fc.init64=" + B64("poweroff -f")), RuntimeMachine, kernel.Drives);
        await using var machine = new QemuMachine(spec, new VmDir(Path.Combine(work, spec.VmId)), new QemuOptions(), console);
        var clock = Stopwatch.StartNew();
        await machine.StartAsync(CancellationToken.None);
        Match line = await console.Seen.WaitAsync(TimeSpan.FromMinutes(2));
        return (clock.Elapsed.TotalSeconds, double.Parse(line.Groups[1].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>A guest with the agent: time to its first answer, host memory, idle CPU and the guest memory QEMU holds after.</summary>
    public async Task<AgentBoot> AgentBootAsync(MachineConfig machineConfig, bool reporting)
    {
        long before = Status(Environment.ProcessId, "VmRSS");
        var vmDir = new VmDir(Path.Combine(work, Id("agent")));
        var spec = new MachineSpec(vmDir.RootPath[(work.Length + 1)..], kernel.Boot("reboot=k panic=-1 quiet"),
            machineConfig, kernel.Drives, new VsockDevice(3, WellKnownNames.FirecrackerVSockName),
            Balloon: reporting ? new BalloonDevice(0, DeflateOnOom: false, FreePageReporting: true) : null);
        await using var machine = new QemuMachine(spec, vmDir, new QemuOptions(), new Watch(null));
        var clock = Stopwatch.StartNew();
        await machine.StartAsync(CancellationToken.None);
        using Socket socket = await HybridVsockDialer.DialAsync(vmDir.FirecrackerVSockPath, WellKnownNames.AgentVsockPort, Dial, CancellationToken.None);
        await using var client = new TtrpcClient(socket);
        await client.CallAsync("Agent", "Version", new Empty(), AgentVersion.Parser);
        double ready = clock.Elapsed.TotalSeconds;
        int pid = machine.Pid!.Value;
        double hostMib = (Status(pid, "RssAnon") + Status(pid, "RssFile") + Math.Max(0, Status(Environment.ProcessId, "VmRSS") - before)) / 1024.0;
        await Task.Delay(Settle);
        double touched = GuestMemoryMib(pid);
        double cpu = CpuSeconds(pid);
        var idle = Stopwatch.StartNew();
        await Task.Delay(Idle);
        double idlePercent = (CpuSeconds(pid) - cpu) / idle.Elapsed.TotalSeconds * 100;
        return new AgentBoot(ready, hostMib, idlePercent, touched);
    }

    /// <summary>vsock throughput both ways through the hybrid socket, with socat in the guest.</summary>
    public async Task<(double ToGuest, double FromGuest)> ThroughputAsync(int mib)
    {
        long bytes = (long)mib << 20;
        string script = $"socat VSOCK-LISTEN:5001 SYSTEM:'cat > /dev/null' & socat VSOCK-LISTEN:5002 SYSTEM:'head -c {bytes} /dev/zero' & wait";
        var vmDir = new VmDir(Path.Combine(work, Id("throughput")));
        var spec = new MachineSpec(vmDir.RootPath[(work.Length + 1)..], kernel.Boot("reboot=k panic=-1 quiet fc.init64=" + B64(script)),
            RuntimeMachine, kernel.Drives, new VsockDevice(3, WellKnownNames.FirecrackerVSockName));
        await using var machine = new QemuMachine(spec, vmDir, new QemuOptions(), new Watch(null));
        await machine.StartAsync(CancellationToken.None);

        byte[] chunk = new byte[256 * 1024];
        double toGuest;
        using (Socket sink = await HybridVsockDialer.DialAsync(vmDir.FirecrackerVSockPath, 5001, Dial, CancellationToken.None))
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

        using Socket source = await HybridVsockDialer.DialAsync(vmDir.FirecrackerVSockPath, 5002, Dial, CancellationToken.None);
        var watch = Stopwatch.StartNew();
        long received = 0;
        int n;
        while ((n = await source.ReceiveAsync(chunk, SocketFlags.None)) > 0)
        {
            received += n;
        }

        return received == bytes
            ? (toGuest, mib / watch.Elapsed.TotalSeconds)
            : throw new InvalidDataException($"{kernel.Name}: guest->host: received {received} of {bytes} bytes");
    }

    private string Id(string kind) => $"{kind}{tag}-{_count++}";

    private static string B64(string script) => Convert.ToBase64String(Encoding.ASCII.GetBytes(script));

    // kB from /proc/<pid>/status.
    private static long Status(int pid, string field)
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

    // User and system time of a process, from /proc/<pid>/stat (fields 14 and 15, after the command's closing parenthesis).
    private static double CpuSeconds(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    // The guest RAM QEMU holds: its guest memory is one shared memfd mapped once, so its resident shared memory is the
    // pages the guest touched and the host has not taken back (free page reporting punches holes into the memfd).
    private static double GuestMemoryMib(int pid) => Status(pid, "RssShmem") / 1024.0;
}

/// <summary>A logger that completes when a console line matches, with the match.</summary>
internal sealed class Watch(Regex? pattern) : ILogger
{
    private readonly TaskCompletionSource<Match> _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<Match> Seen => _seen.Task;

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (pattern?.Match(formatter(state, exception)) is { Success: true } match)
        {
            _seen.TrySetResult(match);
        }
    }
}

/// <summary>Columns of text, the first left-aligned.</summary>
internal sealed class Table(string[] header)
{
    private readonly List<string[]> _rows = [header];

    public void Row(string name, IEnumerable<string> cells) => _rows.Add([name, .. cells]);

    public override string ToString()
    {
        int[] widths = Enumerable.Range(0, _rows[0].Length).Select(c => _rows.Max(r => r[c].Length)).ToArray();
        var text = new StringBuilder();
        foreach (string[] row in _rows)
        {
            text.Append("  ").Append(row[0].PadRight(widths[0]));
            for (int c = 1; c < row.Length; c++)
            {
                text.Append("   ").Append(row[c].PadLeft(widths[c]));
            }

            text.AppendLine();
        }

        return text.ToString();
    }
}
