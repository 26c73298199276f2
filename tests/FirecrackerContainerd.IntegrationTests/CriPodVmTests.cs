using System.Net;
using System.Net.Sockets;
using FirecrackerContainerd.Cri.V1;
using Grpc.Core;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// A Kubernetes pod as a microVM, through containerd's CRI plugin with the aws-firecracker runtime handler: the
/// sandbox boots the pod's VM on the pod's CNI network, the pod's containers run in that VM, and the host, other
/// pods and the pod's own containers reach it as they would reach any pod.
/// </summary>
[Collection(CriContainerd.Name)]
[Trait("Category", "Cri")]
public sealed class CriPodVmTests(CriFixture cri, ITestOutputHelper output) : IAsyncLifetime, IDisposable
{
    private const string Handler = "aws-firecracker";
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(10));
    private string _release = string.Empty;

    public async Task InitializeAsync() => _release = await cri.RequireGuestAsync(_timeout.Token);

    public Task DisposeAsync() => cri.RemoveAllPodsAsync();

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task A_pod_is_one_microVM_on_the_pod_network_whose_containers_share_it_and_its_localhost()
    {
        var netnsBefore = PodNetworkNamespaces();
        PodSandboxConfig podConfig = cri.PodConfig("vm-pod");
        string pod = await cri.RunPodAsync(podConfig, Handler);
        PodSandboxStatus status = (await cri.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = pod })).Status;
        Assert.Equal((PodSandboxState.SandboxReady, Handler), (status.State, status.RuntimeHandler));
        IPAddress podIp = IPAddress.Parse(status.Network.Ip);
        Assert.Equal(cri.Gateway.GetAddressBytes()[..3], podIp.GetAddressBytes()[..3]);

        string web = await RunContainerAsync(pod, podConfig, "web", "mkdir -p /www && echo served from the pod VM > /www/index.html && echo web up && exec httpd -f -p 8080 -h /www");
        string client = await RunContainerAsync(pod, podConfig, "client", "echo client up >&2; exec sleep 600");

        // Both containers run in one guest: the guest's kernel, one boot id; and the pod's address is the guest's.
        ExecSyncResponse webKernel = await ExecAsync(web, "uname -r; cat /proc/sys/kernel/random/boot_id; ip -4 addr show");
        ExecSyncResponse clientKernel = await ExecAsync(client, "uname -r; cat /proc/sys/kernel/random/boot_id");
        string[] webLines = webKernel.Stdout.ToStringUtf8().Split('\n');
        Assert.Equal(_release, webLines[0]);
        Assert.NotEqual((await File.ReadAllTextAsync("/proc/sys/kernel/osrelease")).Trim(), webLines[0]);
        Assert.Equal(webLines[..2], clientKernel.Stdout.ToStringUtf8().Split('\n')[..2]);
        Assert.NotEqual(await File.ReadAllTextAsync("/proc/sys/kernel/random/boot_id"), webLines[1] + "\n");
        Assert.Contains($"inet {podIp}/24", webKernel.Stdout.ToStringUtf8(), StringComparison.Ordinal);

        // The pod's containers share its localhost; the host reaches the pod at its address over the CNI bridge.
        ExecSyncResponse local = await ExecAsync(client, "wget -q -O- http://127.0.0.1:8080/index.html");
        Assert.True(local.ExitCode == 0, $"wget from the other container failed: {local.Stderr.ToStringUtf8()}");
        Assert.Equal("served from the pod VM\n", local.Stdout.ToStringUtf8());
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        Assert.Equal("served from the pod VM\n", await http.GetStringAsync($"http://{podIp}:8080/index.html", _timeout.Token));

        // stdio reaches the kubelet's log files in the CRI format.
        string webLog = Path.Combine(podConfig.LogDirectory, "web.log");
        string clientLog = Path.Combine(podConfig.LogDirectory, "client.log");
        Assert.True(await Eventually.HoldsAsync(() => Contains(webLog, " stdout F web up")), $"no web log line in {webLog}");
        Assert.True(await Eventually.HoldsAsync(() => Contains(clientLog, " stderr F client up")), $"no client log line in {clientLog}");

        // ExecSync: output apart and the exit code.
        ExecSyncResponse exec = await ExecAsync(client, "echo out; echo err >&2; exit 3");
        Assert.Equal((3, "out\n", "err\n"), (exec.ExitCode, exec.Stdout.ToStringUtf8(), exec.Stderr.ToStringUtf8()));

        // Stats come from the container's cgroup in the guest, and a resource update reaches it.
        ContainerStats stats = (await cri.Runtime.ContainerStatsAsync(new ContainerStatsRequest { ContainerId = web }, cancellationToken: _timeout.Token)).Stats;
        Assert.True(stats.Memory.WorkingSetBytes.Value > 0, $"no memory use in {stats}");
        Assert.True(stats.Cpu.UsageCoreNanoSeconds.Value > 0, $"no CPU use in {stats}");
        await cri.Runtime.UpdateContainerResourcesAsync(new UpdateContainerResourcesRequest
        {
            ContainerId = client,
            Linux = new LinuxContainerResources { MemoryLimitInBytes = 96 << 20, CpuPeriod = 100000, CpuQuota = 50000 },
        }, cancellationToken: _timeout.Token);
        ExecSyncResponse limits = await ExecAsync(client, "d=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup); cat $d/memory.max $d/cpu.max");
        Assert.Equal("100663296\n50000 100000\n", limits.Stdout.ToStringUtf8());

        // A container removed and made again in the running pod lands in the same VM.
        await cri.Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = client, Timeout = 5 }, cancellationToken: _timeout.Token);
        await cri.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = client }, cancellationToken: _timeout.Token);
        string again = await RunContainerAsync(pod, podConfig, "client", "exec sleep 600", attempt: 1);
        Assert.Equal(webLines[1], (await ExecAsync(again, "cat /proc/sys/kernel/random/boot_id")).Stdout.ToStringUtf8().Trim());

        // The VM carries the pod's network: a TAP beside the veth, redirected both ways.
        string netns = PodNetworkNamespaces().Except(netnsBefore).Single();
        Assert.Contains("fc-tap0", (await ProcessRunner.RunAsync("ip", ["-n", netns, "link", "show"], TimeSpan.FromSeconds(30))).Stdout, StringComparison.Ordinal);

        await cri.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
        await cri.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        await AssertNothingLeftAsync(netnsBefore);
    }

    [Fact]
    public async Task A_pods_containers_see_its_hostname_hosts_and_dns_and_share_its_shm_its_emptyDir_volume_and_its_network_sysctls()
    {
        PodSandboxConfig podConfig = cri.PodConfig("files");
        podConfig.DnsConfig = new DNSConfig { Servers = { "192.0.2.53" }, Searches = { "pods.example" }, Options = { "ndots:2" } };
        podConfig.Linux.Sysctls.Add("net.ipv4.ping_group_range", "0 2147483647");
        string pod = await cri.RunPodAsync(podConfig, Handler);
        // Where the kubelet keeps a pod's emptyDir volume on the node; in the VM it is a guest directory.
        string emptyDir = System.IO.Directory.CreateDirectory(
            Path.Combine(cri.Directory, "kubelet", "pods", podConfig.Metadata.Uid, "volumes", "kubernetes.io~empty-dir", "shared")).FullName;
        Mount volume = new() { ContainerPath = "/shared", HostPath = emptyDir };

        string writer = await RunContainerAsync(pod, podConfig, "writer", "echo volume > /shared/file && echo shm > /dev/shm/file && echo written && exec sleep 600", mounts: [volume]);
        string reader = await RunContainerAsync(pod, podConfig, "reader", "exec sleep 600", mounts: [volume]);
        Assert.True(await Eventually.HoldsAsync(() => Contains(Path.Combine(podConfig.LogDirectory, "writer.log"), " stdout F written")), "the writer never wrote");

        ExecSyncResponse seen = await ExecAsync(reader, "cat /shared/file /dev/shm/file; hostname; cat /etc/hostname; grep -c . /etc/hosts; cat /etc/resolv.conf; cat /proc/sys/net/ipv4/ping_group_range; grep ' /dev/shm ' /proc/mounts | cut -d' ' -f3");
        string[] lines = seen.Stdout.ToStringUtf8().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(seen.ExitCode == 0, $"reading the pod's files failed: {seen.Stderr.ToStringUtf8()}");
        Assert.Equal(["volume", "shm", "files", "files"], lines[..4]);
        Assert.Equal(File.ReadAllLines("/etc/hosts").Count(l => l.Length > 0).ToString(System.Globalization.CultureInfo.InvariantCulture), lines[4]);
        Assert.Contains("nameserver 192.0.2.53", lines);
        Assert.Contains("search pods.example", lines);
        Assert.Contains("options ndots:2", lines);
        Assert.Equal(["0\t2147483647", "tmpfs"], lines[^2..]);
        // The volume lives in the guest: nothing reaches the node's directory.
        Assert.Empty(System.IO.Directory.GetFileSystemEntries(emptyDir));
        Assert.Equal(0, (await ExecAsync(writer, "test -f /shared/file")).ExitCode);
    }

    [Fact]
    public async Task Two_pods_are_two_microVMs_that_reach_each_other_at_their_pod_addresses()
    {
        PodSandboxConfig serverConfig = cri.PodConfig("server");
        PodSandboxConfig clientConfig = cri.PodConfig("client");
        string server = await cri.RunPodAsync(serverConfig, Handler);
        string client = await cri.RunPodAsync(clientConfig, Handler);
        string serverIp = (await cri.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = server })).Status.Network.Ip;

        string httpd = await RunContainerAsync(server, serverConfig, "httpd", "mkdir -p /www && echo from the other pod > /www/index.html && exec httpd -f -p 8080 -h /www");
        string wget = await RunContainerAsync(client, clientConfig, "wget", "exec sleep 600");

        ExecSyncResponse fetched = await ExecAsync(wget, $"wget -q -O- http://{serverIp}:8080/index.html");
        Assert.True(fetched.ExitCode == 0, $"wget from the other pod failed: {fetched.Stderr.ToStringUtf8()}");
        Assert.Equal("from the other pod\n", fetched.Stdout.ToStringUtf8());
        Assert.NotEqual(
            (await ExecAsync(httpd, "cat /proc/sys/kernel/random/boot_id")).Stdout.ToStringUtf8(),
            (await ExecAsync(wget, "cat /proc/sys/kernel/random/boot_id")).Stdout.ToStringUtf8());
    }

    [Fact]
    public async Task A_host_network_pod_runs_in_a_VM_with_loopback_only_and_a_host_directory_volume_is_refused_naming_the_mount()
    {
        var netnsBefore = PodNetworkNamespaces();
        PodSandboxConfig podConfig = cri.PodConfig("host-net");
        podConfig.Linux.SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Node } };
        string pod = await cri.RunPodAsync(podConfig, Handler);
        string main = await RunContainerAsync(pod, podConfig, "main", "exec sleep 600");

        ExecSyncResponse addresses = await ExecAsync(main, "ip -4 -o addr show");
        Assert.Equal(["127.0.0.1/8"], addresses.Stdout.ToStringUtf8().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3]));
        Assert.Equal(netnsBefore, PodNetworkNamespaces());

        string hostDirectory = System.IO.Directory.CreateDirectory(Path.Combine(cri.Directory, "host-data")).FullName;
        // CRI's CreateContainer only records the container; the runtime sees its spec at StartContainer.
        string data = (await cri.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = pod,
            SandboxConfig = podConfig,
            Config = new ContainerConfig
            {
                Metadata = new ContainerMetadata { Name = "data" },
                Image = new ImageSpec { Image = BusyboxImage.Name },
                Command = { "sleep", "600" },
                Mounts = { new Mount { ContainerPath = "/data", HostPath = hostDirectory } },
            },
        }, cancellationToken: _timeout.Token)).ContainerId;
        var refused = await Assert.ThrowsAsync<RpcException>(() =>
            cri.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = data }, cancellationToken: _timeout.Token).ResponseAsync);
        Assert.Contains($"mount /data (bind {hostDirectory}): a host directory cannot be served inside the VM", refused.Status.Detail, StringComparison.Ordinal);
        await cri.Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = data }, cancellationToken: _timeout.Token);
        Assert.Equal([main], (await cri.Runtime.ListContainersAsync(new ListContainersRequest { Filter = new ContainerFilter { PodSandboxId = pod } })).Containers.Select(c => c.Id));
        Assert.Equal(0, (await ExecAsync(main, "true")).ExitCode); // the VM lives on

        await cri.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
        await cri.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        await AssertNothingLeftAsync(netnsBefore);
    }

    [Fact]
    public async Task An_unknown_handler_or_a_pod_that_names_its_own_VM_is_refused_and_leaves_nothing()
    {
        var netnsBefore = PodNetworkNamespaces();

        var unknown = await Assert.ThrowsAsync<RpcException>(() =>
            cri.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = cri.PodConfig("unknown"), RuntimeHandler = "no-such-handler" }, cancellationToken: _timeout.Token).ResponseAsync);
        PodSandboxConfig named = cri.PodConfig("named-vm");
        named.Annotations.Add("aws.firecracker.vm.id", "my-vm");
        var ownVm = await Assert.ThrowsAsync<RpcException>(() =>
            cri.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = named, RuntimeHandler = Handler }, cancellationToken: _timeout.Token).ResponseAsync);

        Assert.Contains("no-such-handler", unknown.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("annotation aws.firecracker.vm.id cannot choose the VM of a Kubernetes pod's sandbox", ownVm.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain((await cri.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items, p => p.Metadata.Name is "unknown" or "named-vm");
        await AssertNothingLeftAsync(netnsBefore);
    }

    // CRI's pod network namespaces (cni-<uuid> under /var/run/netns).
    private static HashSet<string> PodNetworkNamespaces() =>
        System.IO.Directory.Exists("/var/run/netns")
            ? [.. System.IO.Directory.GetFiles("/var/run/netns", "cni-*").Select(Path.GetFileName).OfType<string>()]
            : [];

    // No VMM, shim, VM directory, mount, pod network namespace or bridge port is left once the pods are removed.
    private async Task AssertNothingLeftAsync(HashSet<string> netnsBefore)
    {
        Assert.True(
            await Eventually.HoldsAsync(() => ProcessRunner.FindProcesses("qemu-system", cri.ShimBaseDirectory).Count == 0 && ProcessRunner.FindProcesses("containerd-shim-aws-firecracker", cri.Address).Count == 0),
            "a VMM or shim outlived its pod");
        Assert.Empty(System.IO.Directory.Exists(cri.ShimBaseDirectory) ? System.IO.Directory.GetFileSystemEntries(cri.ShimBaseDirectory) : []);
        Assert.Empty(ContainerdFixture.MountsBelow(cri.ShimBaseDirectory));
        Assert.Equal(netnsBefore, PodNetworkNamespaces());
        Assert.Equal(string.Empty, (await ProcessRunner.RunAsync("ip", ["-o", "link", "show", "master", cri.Bridge], TimeSpan.FromSeconds(30))).Stdout.Trim());
    }

    private async Task<string> RunContainerAsync(string pod, PodSandboxConfig podConfig, string name, string script, uint attempt = 0, Mount[]? mounts = null)
    {
        try
        {
            string id = (await cri.Runtime.CreateContainerAsync(new CreateContainerRequest
            {
                PodSandboxId = pod,
                SandboxConfig = podConfig,
                Config = new ContainerConfig
                {
                    Metadata = new ContainerMetadata { Name = name, Attempt = attempt },
                    Image = new ImageSpec { Image = BusyboxImage.Name },
                    Command = { "sh", "-c", script },
                    LogPath = name + ".log",
                    Mounts = { mounts ?? [] },
                },
            }, cancellationToken: _timeout.Token)).ContainerId;
            await cri.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id }, cancellationToken: _timeout.Token);
            return id;
        }
        catch (RpcException e)
        {
            Assert.Fail($"container {name} on containerd {cri.Version}: {e.Status.Detail}\n{cri.Problems()}");
            throw;
        }
    }

    private async Task<ExecSyncResponse> ExecAsync(string container, string script)
    {
        ExecSyncResponse response = await cri.Runtime.ExecSyncAsync(
            new ExecSyncRequest { ContainerId = container, Cmd = { "sh", "-c", script }, Timeout = 60 }, cancellationToken: _timeout.Token);
        output.WriteLine($"{container[..12]}$ {script}\n{response.Stdout.ToStringUtf8()}{response.Stderr.ToStringUtf8()}(exit {response.ExitCode})");
        return response;
    }

    private static bool Contains(string path, string text) => File.Exists(path) && File.ReadAllText(path).Contains(text, StringComparison.Ordinal);
}
