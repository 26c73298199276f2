using System.Diagnostics;
using System.Text.Json;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Addressing;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// A shim started for a VM id as containerd starts one (its start verb in a bundle whose config names the VM), with
/// a ttrpc connection to it for the control API; disposing kills a shim that is still running.
/// </summary>
internal sealed record ControlShim(ContainerdFixture Containerd, string VmId, TtrpcClient Client, int Pid, string Bundle) : IAsyncDisposable
{
    /// <summary>Starts the shim for VM <paramref name="vmId"/> of namespace <paramref name="ns"/> and connects to it.</summary>
    public static async Task<ControlShim> StartAsync(ContainerdFixture containerd, string ns, string vmId, CancellationToken cancellationToken)
    {
        containerd.NoteTaskId(ns, vmId);
        string bundle = Path.Combine(containerd.Directory, "control-bundles", ns, vmId);
        Directory.CreateDirectory(bundle);
        await File.WriteAllTextAsync(Path.Combine(bundle, "config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["ociVersion"] = "1.0.2",
            ["annotations"] = new Dictionary<string, string> { ["aws.firecracker.vm.id"] = vmId },
        }), cancellationToken);
        CommandResult start = await ProcessRunner.RunAsync(
            Path.Combine(containerd.ShimDirectory, "containerd-shim-aws-firecracker"),
            ["-namespace", ns, "-address", containerd.Address, "-publish-binary", ContainerdFixture.ContainerdBinary, "-id", vmId, "start"],
            TimeSpan.FromSeconds(60), bundle,
            new Dictionary<string, string>
            {
                ["FIRECRACKER_CONTAINERD_RUNTIME_CONFIG"] = containerd.RuntimeConfigPath,
                ["TMPDIR"] = containerd.ShimTempDirectory,
                [FirecrackerContainerd.Shim.Lifecycle.InvocationLog.EnvironmentVariable] = containerd.InvocationLogPath,
            },
            stdin: []);
        Assert.True(start.ExitCode == 0, containerd.Describe(start));
        Assert.Equal(ShimSocketAddress.For(containerd.Address, ns, vmId), start.Stdout);
        TtrpcClient client = await TtrpcClient.ConnectUnixAsync(ShimSocketAddress.ToPath(start.Stdout), cancellationToken);
        ConnectResponse connect = await client.CallAsync(ServiceNames.TaskV2, "Connect", new ConnectRequest { Id = vmId }, ConnectResponse.Parser, cancellationToken: cancellationToken);
        return new ControlShim(containerd, vmId, client, (int)connect.ShimPid, bundle);
    }

    /// <summary>Asserts that <paramref name="call"/> fails with <paramref name="expected"/>; returns the error message.</summary>
    public static async Task<string> AssertStatusAsync(StatusCode expected, Func<Task> call)
    {
        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(call);
        Assert.True(e.StatusCode == expected, $"expected {expected}, got {e.StatusCode}: {e.Message}");
        return e.Message;
    }

    /// <summary>Calls a method of the shim's Firecracker (control) service.</summary>
    public Task<T> CallAsync<T>(string method, IMessage request, MessageParser<T> parser)
        where T : IMessage<T> =>
        Client.CallAsync(ServiceNames.Firecracker, method, request, parser, new TtrpcCallOptions { Timeout = TimeSpan.FromMinutes(3) });

    /// <summary>StopVM with 2 s for the guest to power off, then waits for the shim to exit (failing with its log).</summary>
    public async Task StopVmAsync()
    {
        await CallAsync("StopVM", new StopVMRequest { VMID = VmId, TimeoutSeconds = 2 }, Empty.Parser);
        Assert.True(await Eventually.HoldsAsync(() => Containerd.ShimProcesses(VmId).Count == 0), $"the shim did not exit after StopVM\n{Containerd.ShimLog()}");
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        try
        {
            using var process = Process.GetProcessById(Pid);
            if (process.ProcessName.StartsWith("containerd-shim", StringComparison.Ordinal) && !process.HasExited)
            {
                process.Kill();
                await process.WaitForExitAsync();
            }
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            // Exited already, as it should (InvalidOperationException: it exited between the lookup and the name).
        }

        Directory.Delete(Bundle, recursive: true);
    }
}
