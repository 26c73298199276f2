using System.Net;
using System.Text;
using FirecrackerContainerd.Cri.V1;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// The CRI path itself, with containerd's own runc handler: the CRI client, the CRI-enabled configuration of each
/// containerd version, the local pause image and the CNI network work before any microVM is involved. The
/// aws-firecracker handler's tests stand on this.
/// </summary>
[Collection(CriContainerd.Name)]
[Trait("Category", "Cri")]
public sealed class CriBaselineTests(CriFixture cri, ITestOutputHelper output) : IAsyncLifetime
{
    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => cri.RemoveAllPodsAsync();

    [Fact]
    public async Task The_CRI_plugin_answers_runtime_v1_with_containerds_version_and_is_ready()
    {
        VersionResponse version = await cri.Runtime.VersionAsync(new VersionRequest { Version = "v1" });
        StatusResponse status = await cri.Runtime.StatusAsync(new StatusRequest());

        Assert.Equal("containerd", version.RuntimeName);
        Assert.Equal("v1", version.RuntimeApiVersion);
        Assert.Equal(cri.Version, version.RuntimeVersion);
        Assert.Contains(status.Status.Conditions, c => c.Type == "RuntimeReady" && c.Status);
        Assert.True(status.Status.Conditions.Single(c => c.Type == "NetworkReady").Status, $"the CNI network is not ready: {status.Status}\n{cri.Problems()}");
        ImageStatusResponse pause = await cri.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = BusyboxImage.PauseName } });
        Assert.Contains(BusyboxImage.PauseName, pause.Image.RepoTags);
    }

    [Fact]
    public async Task A_runc_pod_gets_an_address_on_the_bridge_runs_a_container_execs_and_logs_in_the_CRI_format()
    {
        PodSandboxConfig podConfig = cri.PodConfig("runc-pod");
        string pod = await cri.RunPodAsync(podConfig, "runc");
        PodSandboxStatus status = (await cri.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = pod })).Status;

        Assert.Equal(PodSandboxState.SandboxReady, status.State);
        Assert.Equal("runc", status.RuntimeHandler);
        IPAddress podIp = IPAddress.Parse(status.Network.Ip);
        Assert.Equal(cri.Gateway.GetAddressBytes()[..3], podIp.GetAddressBytes()[..3]);
        Assert.NotEqual(cri.Gateway, podIp);

        string container = (await cri.Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = pod,
            SandboxConfig = podConfig,
            Config = new ContainerConfig
            {
                Metadata = new ContainerMetadata { Name = "main" },
                Image = new ImageSpec { Image = BusyboxImage.Name },
                Command = { "sh", "-c", "echo hello from the pod; echo to stderr >&2; exec sleep 600" },
                LogPath = "main.log",
            },
        })).ContainerId;
        await cri.Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = container });

        ExecSyncResponse exec = await cri.Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = container, Cmd = { "sh", "-c", "ip -4 addr show eth0; exit 3" }, Timeout = 30 });
        Assert.Equal(3, exec.ExitCode);
        Assert.Contains($"inet {podIp}/24", exec.Stdout.ToStringUtf8(), StringComparison.Ordinal);

        string log = Path.Combine(podConfig.LogDirectory, "main.log");
        Assert.True(await Eventually.HoldsAsync(() => File.Exists(log) && File.ReadAllText(log).Contains("to stderr", StringComparison.Ordinal)), $"no log at {log}");
        string[] lines = (await File.ReadAllTextAsync(log)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        output.WriteLine(string.Join('\n', lines));
        Assert.Contains(lines, l => CriLogLine(l, "stdout", "hello from the pod"));
        Assert.Contains(lines, l => CriLogLine(l, "stderr", "to stderr"));

        await cri.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = pod });
        await cri.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = pod });
        Assert.Empty((await cri.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest())).Items);
        Assert.Empty((await cri.Runtime.ListContainersAsync(new ListContainersRequest())).Containers);
    }

    // "<RFC3339Nano timestamp> <stream> F <text>": containerd's CRI log format for a full line.
    private static bool CriLogLine(string line, string stream, string text)
    {
        string[] parts = line.Split(' ', 4);
        return parts.Length == 4 && DateTimeOffset.TryParse(parts[0], out _) && parts[1] == stream && parts[2] == "F" && parts[3] == text;
    }
}
