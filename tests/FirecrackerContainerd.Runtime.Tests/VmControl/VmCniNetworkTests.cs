using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Network.Namespaces;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Runtime.VmControl;
using FirecrackerContainerd.Ttrpc;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Runtime.Tests.VmControl;

/// <summary>
/// Joining a VM to a CNI network with a fake plugin (a shell script that records its calls and prints a result shaped
/// as tc-redirect-tap's), in a real network namespace under /var/run/netns (needs root).
/// </summary>
[Trait("Category", "Network")]
public sealed class VmCniNetworkTests : IDisposable
{
    private const string TapResult = """
        {"cniVersion":"1.0.0",
         "interfaces":[{"name":"veth0","mac":"aa:00:00:00:00:03","sandbox":"$CNI_NETNS"},{"name":"tap0","mac":"bb:00:00:00:00:04","sandbox":"$CNI_NETNS"},
                       {"name":"tap0","mac":"aa:00:00:00:00:03","sandbox":"$CNI_CONTAINERID"}],
         "ips":[{"address":"10.77.3.5/24","gateway":"10.77.3.1","interface":0},{"address":"10.77.3.5/24","gateway":"10.77.3.1","interface":2}]}
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("vm-cni-").FullName;
    private readonly string _vmId = "fcvm-" + Guid.NewGuid().ToString("N")[..8];

    private string Netns => VmCniNetwork.NamespacePathOf(_vmId);

    private string Calls => Path.Combine(_dir, "calls");

    public void Dispose()
    {
        if (File.Exists(Netns))
        {
            NetworkNamespace.Remove(Netns);
        }

        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Attach_makes_the_namespace_runs_DEL_then_ADD_and_the_VM_boots_in_it_on_the_results_tap()
    {
        (CniNetworkRequest request, CniNetworkConfig network) = Network(TapResult);

        VmCniNetwork attached = await VmCniNetwork.AttachAsync(_vmId, request, network, NullLogger.Instance, CancellationToken.None);
        (RuntimeConfig config, VmDevices devices) = attached.Apply(new RuntimeConfig { KernelArgs = "console=ttyS0" }, VmDevices.None);

        Assert.Equal(["DEL netns", "ADD netns"], File.ReadAllLines(Calls));
        Assert.Equal("console=ttyS0 fc.net=aa:00:00:00:00:03,10.77.3.5/24,10.77.3.1", config.KernelArgs);
        Assert.Equal(("net0", "tap0", "aa:00:00:00:00:03"), (devices.NetworkInterfaces[0].IfaceId, devices.NetworkInterfaces[0].HostDevName, devices.NetworkInterfaces[0].GuestMac));
        Assert.Equal((Netns, attached), (devices.NetworkNamespace, devices.HostNetwork));

        await attached.DisposeAsync();
        await attached.DisposeAsync();

        Assert.Equal(["DEL netns", "ADD netns", "DEL netns"], File.ReadAllLines(Calls));
        Assert.False(File.Exists(Netns), $"{Netns} is left");
    }

    [Fact]
    public async Task A_result_without_a_tap_fails_naming_tc_redirect_tap_and_leaves_nothing()
    {
        (CniNetworkRequest request, CniNetworkConfig network) =
            Network("""{"cniVersion":"1.0.0","interfaces":[{"name":"veth0","mac":"aa:00:00:00:00:03","sandbox":"$CNI_NETNS"}],"ips":[{"address":"10.77.3.5/24","interface":0}]}""");

        var e = await Assert.ThrowsAsync<TtrpcException>(() => VmCniNetwork.AttachAsync(_vmId, request, network, NullLogger.Instance, CancellationToken.None));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains($"create vm \"{_vmId}\": CNI network \"fcnet\"", e.Message, StringComparison.Ordinal);
        Assert.Contains("must end with tc-redirect-tap", e.Message, StringComparison.Ordinal);
        Assert.Equal(["DEL netns", "ADD netns", "DEL netns"], File.ReadAllLines(Calls));
        Assert.False(File.Exists(Netns), $"{Netns} is left");
    }

    [Fact]
    public async Task A_failed_ADD_is_undone_with_DEL_and_the_namespace_goes()
    {
        (CniNetworkRequest request, CniNetworkConfig network) = Network(null);

        var e = await Assert.ThrowsAsync<TtrpcException>(() => VmCniNetwork.AttachAsync(_vmId, request, network, NullLogger.Instance, CancellationToken.None));

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("no addresses left", e.Message, StringComparison.Ordinal);
        Assert.Equal(["DEL netns", "ADD netns", "DEL netns"], File.ReadAllLines(Calls));
        Assert.False(File.Exists(Netns), $"{Netns} is left");
    }

    /// <summary>
    /// A network of one fake plugin that logs each command and whether the namespace exists, and prints
    /// <paramref name="addResult"/> on ADD (a CNI error when null).
    /// </summary>
    private (CniNetworkRequest, CniNetworkConfig) Network(string? addResult)
    {
        string bin = Directory.CreateDirectory(Path.Combine(_dir, "bin")).FullName;
        string conf = Directory.CreateDirectory(Path.Combine(_dir, "conf")).FullName;
        string add = addResult is null
            ? """echo '{"cniVersion":"1.0.0","code":11,"msg":"no addresses left"}'; exit 1"""
            : $"cat <<EOF\n{addResult}\nEOF";
        string plugin = Path.Combine(bin, "fake");
        File.WriteAllText(plugin, $"""
            #!/bin/sh
            cat > /dev/null
            if [ -e "$CNI_NETNS" ]; then echo "$CNI_COMMAND netns" >> "{Calls}"; else echo "$CNI_COMMAND" >> "{Calls}"; fi
            if [ "$CNI_COMMAND" = ADD ]; then
            {add}
            fi
            """);
        File.SetUnixFileMode(plugin, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(Path.Combine(conf, "10-fcnet.conflist"), """{"cniVersion":"1.0.0","name":"fcnet","plugins":[{"type":"fake"}]}""");
        var nic = new FirecrackerNetworkInterface { CNIConfig = new CNIConfiguration { NetworkName = "fcnet", ConfDir = conf, BinPath = { bin } } };
        CniNetworkRequest request = CniNetworkRequest.FromRequest(new CreateVMRequest { VMID = _vmId, NetworkInterfaces = { nic } })!;
        return (request, request.LoadNetwork());
    }
}
