using System.Diagnostics;
using System.Globalization;
using FirecrackerContainerd.Cri.V1;
using FirecrackerContainerd.IntegrationTests;

// Kubernetes pods through a private containerd's CRI plugin, as a kubelet starts them: RunPodSandbox, then
// CreateContainer and StartContainer of a container that prints a marker, timed to the pod being ready and to the
// marker in the container's CRI log file. The aws-firecracker handler (one microVM per pod) against containerd's runc
// handler, measured alternately in the same run, medians of RUNS after one warm-up of each. Every pod is removed
// before the next starts.
int runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5;
if (runs < 1)
{
    Console.Error.WriteLine("usage: FirecrackerContainerd.CriBench [RUNS >= 1]");
    return 2;
}

var cri = new CriFixture();
await cri.InitializeAsync();
try
{
    using var preparation = new CancellationTokenSource(TimeSpan.FromMinutes(30));
    await cri.RequireGuestAsync(preparation.Token);
    string[] handlers = ["runc", "aws-firecracker"];
    var samples = handlers.ToDictionary(h => h, _ => (Ready: new List<double>(), First: new List<double>()));
    for (int run = 0; run <= runs; run++)
    {
        foreach (string handler in handlers)
        {
            (double ready, double first) = await StartPodAsync(cri, handler, run);
            Console.Error.WriteLine($"run {run}{(run == 0 ? " (warm-up)" : string.Empty)} {handler}: pod ready {ready:F3} s, first log line {first:F3} s");
            if (run > 0)
            {
                samples[handler].Ready.Add(ready);
                samples[handler].First.Add(first);
            }
        }
    }

    double runcReady = Median(samples["runc"].Ready), runcFirst = Median(samples["runc"].First);
    double vmReady = Median(samples["aws-firecracker"].Ready), vmFirst = Median(samples["aws-firecracker"].First);
    Console.WriteLine($"containerd {cri.Version}, CRI, medians of {runs}");
    Console.WriteLine($"  RunPodSandbox to pod ready       runc {runcReady,7:F3} s   aws-firecracker {vmReady,7:F3} s   {vmReady / runcReady,6:F1}x");
    Console.WriteLine($"  RunPodSandbox to first log line runc {runcFirst,7:F3} s   aws-firecracker {vmFirst,7:F3} s   {vmFirst / runcFirst,6:F1}x");
    return 0;
}
finally
{
    await cri.DisposeAsync();
}

static async Task<(double Ready, double First)> StartPodAsync(CriFixture cri, string handler, int run)
{
    PodSandboxConfig config = cri.PodConfig($"bench-{handler}-{run}");
    string marker = $"cri-bench-{handler}-{run}";
    var clock = Stopwatch.StartNew();
    string pod = await cri.RunPodAsync(config, handler);
    double ready = clock.Elapsed.TotalSeconds;
    string container = (await cri.Runtime.CreateContainerAsync(new CreateContainerRequest
    {
        PodSandboxId = pod,
        SandboxConfig = config,
        Config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = "bench" },
            Image = new ImageSpec { Image = CriFixture.ContainerImage },
            Command = { "sh", "-c", $"echo {marker}; exec sleep 600" },
            LogPath = "bench.log",
        },
    })).ContainerId;
    await cri.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = container });
    string log = Path.Combine(config.LogDirectory, "bench.log");
    while (!(File.Exists(log) && File.ReadAllText(log).Contains($" stdout F {marker}", StringComparison.Ordinal)))
    {
        if (clock.Elapsed > TimeSpan.FromMinutes(2))
        {
            throw new TimeoutException($"{handler} pod {pod}: no '{marker}' in {log} after 2 minutes\n{cri.Problems()}");
        }

        await Task.Delay(5);
    }

    double first = clock.Elapsed.TotalSeconds;
    await cri.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
    await cri.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
    return (ready, first);
}

static double Median(List<double> values)
{
    double[] sorted = [.. values.Order()];
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
}
