using System.Collections.Concurrent;
using System.Diagnostics;
using FirecrackerContainerd.Control.Configuration;
using FirecrackerContainerd.Control.Service;
using FirecrackerContainerd.Control.Shims;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Ttrpc.Client;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Control.Tests;

/// <summary>A daemon on a temp socket whose launcher starts in-process fake shims; cleans up every shim, process and file.</summary>
public sealed class ControlHarness : IAsyncLifetime, IShimLauncher
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fcctl-test-").FullName;
    private readonly List<Process> _processes = [];
    private ControlDaemon? _daemon;

    public ControlOptions Options => new()
    {
        SocketPath = Path.Combine(_dir, "control.sock"),
        GrpcSocketPath = Path.Combine(_dir, "control-grpc.sock"),
        // A per-test containerd address gives per-test shim socket names under /run/containerd/s.
        ContainerdAddress = Path.Combine(_dir, "containerd.sock"),
        StateDir = Path.Combine(_dir, "state"),
    };

    public ConcurrentDictionary<string, FakeShim> Shims { get; } = new();

    public ConcurrentQueue<string> Cleanups { get; } = new();

    public async Task InitializeAsync() =>
        _daemon = await ControlDaemon.StartAsync(Options, this, NullLogger.Instance, CancellationToken.None);

    public async Task DisposeAsync()
    {
        if (_daemon is not null)
        {
            await _daemon.DisposeAsync();
        }

        foreach (var shim in Shims.Values)
        {
            await shim.DisposeAsync();
        }

        foreach (var process in _processes)
        {
            if (!process.HasExited)
            {
                process.Kill();
                await process.WaitForExitAsync();
            }

            process.Dispose();
        }

        foreach (string ns in new[] { "default", "ns1", "ns2" })
        {
            foreach (string vm in new[] { "vm1", "vm2", "hang", "crash" })
            {
                ShimSocket.Remove(Endpoint(ns, vm).SocketPath);
            }
        }

        Directory.Delete(_dir, recursive: true);
    }

    public ShimEndpoint Endpoint(string ns, string vmId) => ShimEndpoint.For(Options.ContainerdAddress, ns, vmId);

    /// <summary>How long the fake shims started from now take to answer CreateVM.</summary>
    public TimeSpan ShimCreateDelay { get; set; }

    public async Task<FakeShim> StartShimAsync(string ns, string vmId)
    {
        var shim = await FakeShim.StartAsync(Endpoint(ns, vmId).SocketPath, vmId);
        shim.CreateDelay = ShimCreateDelay;
        Shims[$"{ns}/{vmId}"] = shim;
        return shim;
    }

    /// <summary>Starts fake-shim-process.py in <paramref name="mode"/> on the VM's socket, with a bundle as if the daemon had created it.</summary>
    public async Task<Process> StartShimProcessAsync(string mode, string ns, string vmId)
    {
        string python = new[] { "/usr/bin/python3", "/usr/local/bin/python3" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("python3 is not installed (apt-get install python3): the real-process fake shim needs it");
        var endpoint = Endpoint(ns, vmId);
        VmBundle.For(Options.StateDir, ns, vmId).Create(vmId);
        Directory.CreateDirectory(Path.GetDirectoryName(endpoint.SocketPath)!);
        var info = new ProcessStartInfo(python) { RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "fake-shim-process.py"));
        info.ArgumentList.Add(mode);
        info.ArgumentList.Add(endpoint.SocketPath);
        var process = Process.Start(info)!;
        _processes.Add(process);
        Assert.Equal("ready", await process.StandardOutput.ReadLineAsync());
        return process;
    }

    public async Task<TResponse> CallAsync<TResponse>(string ns, string method, IMessage request, MessageParser<TResponse> parser,
        string service = ServiceNames.Firecracker)
        where TResponse : IMessage<TResponse>
    {
        await using var client = await TtrpcClient.ConnectUnixAsync(Options.SocketPath, CancellationToken.None);
        return await client.CallAsync(service, method, request, parser,
            new TtrpcCallOptions { Metadata = CallNamespace.For(ns), Timeout = TimeSpan.FromSeconds(20) });
    }

    public async Task<(int Code, string Stdout, string Stderr)> FcctlAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await Fcctl.FcctlProgram.RunAsync([.. args, "--socket", Options.SocketPath], stdout, stderr, CancellationToken.None);
        return (code, stdout.ToString(), stderr.ToString());
    }

    Task IShimLauncher.StartAsync(ShimEndpoint endpoint, VmBundle bundle, CancellationToken cancellationToken) =>
        StartShimAsync(endpoint.Namespace, endpoint.VmId);

    Task IShimLauncher.CleanupAsync(ShimEndpoint endpoint, VmBundle bundle, CancellationToken cancellationToken)
    {
        Cleanups.Enqueue($"{endpoint.Namespace}/{endpoint.VmId}");
        return Task.CompletedTask;
    }
}
