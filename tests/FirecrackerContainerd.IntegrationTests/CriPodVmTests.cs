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

        await cri.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
        await cri.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        Assert.True(await Eventually.HoldsAsync(() => ProcessRunner.FindProcesses("qemu-system", cri.ShimBaseDirectory).Count == 0), "the pod's VMM outlived its pod");
        Assert.Empty((await cri.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);
    }

    private async Task<string> RunContainerAsync(string pod, PodSandboxConfig podConfig, string name, string script)
    {
        try
        {
            string id = (await cri.Runtime.CreateContainerAsync(new CreateContainerRequest
            {
                PodSandboxId = pod,
                SandboxConfig = podConfig,
                Config = new ContainerConfig
                {
                    Metadata = new ContainerMetadata { Name = name },
                    Image = new ImageSpec { Image = BusyboxImage.Name },
                    Command = { "sh", "-c", script },
                    LogPath = name + ".log",
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
