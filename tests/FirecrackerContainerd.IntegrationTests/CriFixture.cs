using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using FirecrackerContainerd.Cri.V1;
using Grpc.Net.Client;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>All tests that talk CRI share one private containerd with its CRI plugin on, and run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class CriContainerd : ICollectionFixture<CriFixture>
{
    public const string Name = "cri";
}

/// <summary>
/// A private containerd (the version under test, as <see cref="ContainerdFixture"/> picks it) serving the CRI API on
/// its socket, configured by scripts/lib/containerd-config --cri: the runc and aws-firecracker runtime handlers, a
/// locally built pause image and busybox imported into the k8s.io namespace (no registry), and a CNI network of
/// Debian's bridge and loopback plugins on a bridge and subnet of its own. Teardown removes every pod, stops
/// containerd, and removes the bridge, the directory and the shims it left.
/// </summary>
public sealed class CriFixture : IAsyncLifetime
{
    /// <summary>The CRI namespace in containerd.</summary>
    public const string Namespace = "k8s.io";

    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan GuestPreparationTimeout = TimeSpan.FromMinutes(20);
    private readonly Lock _guestLock = new();
    private ContainerdProcess? _containerd;
    private GrpcChannel? _channel;
    private Task<string>? _guest;

    /// <summary>The private directory holding config, root, state, sockets, CNI files and pod logs.</summary>
    public string Directory { get; private set; } = string.Empty;

    /// <summary>containerd's gRPC socket, which also serves CRI.</summary>
    public string Address => Path.Combine(Directory, "c.sock");

    /// <summary>The Linux bridge the CNI network puts pods on.</summary>
    public string Bridge { get; private set; } = string.Empty;

    /// <summary>The pods' subnet (a /24 chosen at random in 10.77.0.0/16, so fixtures of parallel runs do not collide).</summary>
    public string Subnet { get; private set; } = string.Empty;

    /// <summary>The bridge's address, the pods' gateway.</summary>
    public IPAddress Gateway { get; private set; } = IPAddress.None;

    /// <summary>Where the pods' logs go (the kubelet's log_directory).</summary>
    public string LogDirectory => Path.Combine(Directory, "pods");

    /// <summary>The runtime configuration the aws-firecracker handler's shims read (written by <see cref="RequireGuestAsync"/>).</summary>
    public string RuntimeConfigPath => Path.Combine(Directory, "firecracker-runtime.json");

    /// <summary>Where the shims keep their VM directories.</summary>
    public string ShimBaseDirectory => Path.Combine(Directory, "vms");

    /// <summary>The containerd version under test.</summary>
    public string Version { get; private set; } = string.Empty;

    /// <summary>The busybox image imported into the k8s.io namespace, for containers.</summary>
    public static string ContainerImage => BusyboxImage.Name;

    public RuntimeService.RuntimeServiceClient Runtime { get; private set; } = null!;

    public ImageService.ImageServiceClient Images { get; private set; } = null!;

    /// <summary>containerd's log so far.</summary>
    public string ContainerdLog => _containerd?.Log ?? string.Empty;

    /// <inheritdoc/>
    public async Task InitializeAsync()
    {
        if (!File.Exists("/usr/lib/cni/bridge") || !File.Exists("/usr/lib/cni/host-local") || !File.Exists("/usr/lib/cni/loopback"))
        {
            throw new InvalidOperationException("the CNI plugins are missing from /usr/lib/cni: install them with `apt-get install containernetworking-plugins` (scripts/install-deps does)");
        }

        Directory = System.IO.Directory.CreateTempSubdirectory("fccri-").FullName;
        string cniBin = System.IO.Directory.CreateDirectory(Path.Combine(Directory, "cni", "bin")).FullName;
        string cniConf = System.IO.Directory.CreateDirectory(Path.Combine(Directory, "cni", "conf")).FullName;
        System.IO.Directory.CreateDirectory(LogDirectory);
        foreach (string plugin in System.IO.Directory.GetFiles("/usr/lib/cni"))
        {
            File.CreateSymbolicLink(Path.Combine(cniBin, Path.GetFileName(plugin)), plugin);
        }

        int third = RandomNumberGenerator.GetInt32(256);
        Subnet = $"10.77.{third}.0/24";
        Gateway = IPAddress.Parse($"10.77.{third}.1");
        Bridge = $"fcbr{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        await File.WriteAllTextAsync(Path.Combine(cniConf, "10-fctest.conflist"), $$"""
            {
              "cniVersion": "1.0.0",
              "name": "fctest",
              "plugins": [
                {
                  "type": "bridge",
                  "bridge": "{{Bridge}}",
                  "isGateway": true,
                  "ipMasq": false,
                  "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": "{{Subnet}}" }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": "{{Path.Combine(Directory, "cni", "ipam")}}"
                  }
                },
                { "type": "loopback" }
              ]
            }
            """);

        string shimDirectory = System.IO.Directory.CreateDirectory(Path.Combine(Directory, "bin")).FullName;
        File.CreateSymbolicLink(Path.Combine(shimDirectory, "containerd-shim-aws-firecracker"), await NativeBinary.ShimAsync(CancellationToken.None));
        string configPath = Path.Combine(Directory, "config.toml");
        CommandResult config = await ProcessRunner.RunAsync(
            Path.Combine(GuestImage.RepoRoot(), "scripts", "lib", "containerd-config"),
            ["--cri", BusyboxImage.PauseName, cniConf, cniBin, ContainerdFixture.ContainerdBinary, Directory, Address, "debug"],
            CommandTimeout);
        Assert.True(config.ExitCode == 0, $"scripts/lib/containerd-config --cri failed: {config.Output}");
        await File.WriteAllTextAsync(configPath, config.Stdout);

        _containerd = new ContainerdProcess(
            ContainerdFixture.ContainerdBinary, ContainerdFixture.CtrBinary, configPath, Address, Directory,
            new Dictionary<string, string>
            {
                ["PATH"] = string.Join(':', shimDirectory, Path.GetDirectoryName(ContainerdFixture.ContainerdBinary),
                    Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin"),
                ["TMPDIR"] = System.IO.Directory.CreateDirectory(Path.Combine(Directory, "tmp")).FullName,
                ["FIRECRACKER_CONTAINERD_RUNTIME_CONFIG"] = RuntimeConfigPath,
            });
        await _containerd.StartAsync();
        Version = (await CtrAsync("version")).Stdout.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith("Version:", StringComparison.Ordinal))["Version:".Length..].Trim();

        string images = System.IO.Directory.CreateDirectory(Path.Combine(Directory, "images")).FullName;
        BusyboxImage.WritePause(Path.Combine(images, "pause.tar"));
        BusyboxImage.Write(Path.Combine(images, "busybox.tar"));
        foreach (string tar in new[] { "pause.tar", "busybox.tar" })
        {
            CommandResult import = await CtrAsync("image", "import", "--snapshotter", "native", Path.Combine(images, tar));
            Assert.True(import.ExitCode == 0, $"ctr image import {tar} failed: {import.Output}");
        }

        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(Address), cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        _channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = handler });
        Runtime = new RuntimeService.RuntimeServiceClient(_channel);
        Images = new ImageService.ImageServiceClient(_channel);
    }

    /// <summary>
    /// Builds the agent and guest image (cached) and points the aws-firecracker handler's shims at them, once for all
    /// tests; returns the guest's kernel release.
    /// </summary>
    public Task<string> RequireGuestAsync(CancellationToken cancellationToken)
    {
        lock (_guestLock)
        {
            _guest ??= PrepareGuestAsync();
        }

        return _guest.WaitAsync(cancellationToken);
    }

    /// <summary>Runs <c>ctr --address ... -n k8s.io args</c>.</summary>
    public Task<CommandResult> CtrAsync(params string[] args) =>
        ProcessRunner.RunAsync(ContainerdFixture.CtrBinary, ["--address", Address, "-n", Namespace, .. args], CommandTimeout);

    /// <summary>Stops and removes every pod sandbox CRI knows, whatever state a failed test left it in.</summary>
    public async Task RemoveAllPodsAsync()
    {
        ListPodSandboxResponse pods = await Runtime.ListPodSandboxAsync(new ListPodSandboxRequest());
        foreach (PodSandbox pod in pods.Items)
        {
            await Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod.Id });
            await Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod.Id });
        }
    }

    /// <summary>A pod sandbox configuration with a unique name and uid, logging under <see cref="LogDirectory"/>.</summary>
    public PodSandboxConfig PodConfig(string name)
    {
        string uid = Guid.NewGuid().ToString();
        return new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = name, Uid = uid, Namespace = "fctest", Attempt = 0 },
            Hostname = name,
            LogDirectory = System.IO.Directory.CreateDirectory(Path.Combine(LogDirectory, uid)).FullName,
            Linux = new LinuxPodSandboxConfig(),
        };
    }

    /// <summary>RunPodSandbox with <paramref name="handler"/>; a refusal fails the test with containerd's complaints.</summary>
    public async Task<string> RunPodAsync(PodSandboxConfig config, string handler)
    {
        try
        {
            return (await Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config, RuntimeHandler = handler })).PodSandboxId;
        }
        catch (Grpc.Core.RpcException e)
        {
            Assert.Fail($"RunPodSandbox ({handler}) on containerd {Version} failed: {e.Status.Detail}\n{Problems()}");
            throw;
        }
    }

    private async Task<string> PrepareGuestAsync()
    {
        using var bound = new CancellationTokenSource(GuestPreparationTimeout);
        return await GuestRuntime.WriteConfigAsync(RuntimeConfigPath, ShimBaseDirectory, bound.Token);
    }

    /// <summary>containerd's log lines naming an error or a warning, for a failure message.</summary>
    public string Problems() =>
        string.Join('\n', ContainerdLog.Split('\n').Where(l => l.Contains("level=error", StringComparison.Ordinal) || l.Contains("level=warn", StringComparison.Ordinal)).TakeLast(40));

    /// <inheritdoc/>
    public async Task DisposeAsync()
    {
        if (_containerd is not null)
        {
            try
            {
                // No CRI channel yet when the set-up failed before it (an image import, say): there are no pods either.
                if (_channel is not null)
                {
                    await RemoveAllPodsAsync();
                }
            }
            catch (Grpc.Core.RpcException)
            {
                // containerd no longer answers: what it started is killed below.
            }
            finally
            {
                await _containerd.StopAsync();
            }
        }

        _channel?.Dispose();
        foreach (int pid in ProcessRunner.FindProcesses("containerd-shim", Address))
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
            catch (ArgumentException)
            {
                // Already gone.
            }
        }

        if (Bridge.Length > 0)
        {
            await ProcessRunner.RunAsync("ip", ["link", "delete", Bridge], CommandTimeout);
        }

        foreach (string mountPoint in ContainerdFixture.MountsBelow(Directory).OrderByDescending(m => m.Length))
        {
            await ProcessRunner.RunAsync("umount", ["--lazy", mountPoint], CommandTimeout);
        }

        if (Directory.Length > 0 && System.IO.Directory.Exists(Directory))
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }
}
