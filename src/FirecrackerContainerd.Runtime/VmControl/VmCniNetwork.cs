using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Network.Namespaces;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc;
using Microsoft.Extensions.Logging;
using VmmNetworkInterface = FirecrackerContainerd.Vmm.Machine.NetworkInterface;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>
/// A VM's network made by CNI, as upstream's firecracker-go-sdk makes it for CreateVM's CNIConfig: a network namespace
/// of the VM's own at <c>/var/run/netns/VMID</c>, in which the network's plugins (the last one tc-redirect-tap) make
/// an interface and a TAP redirected to it; the VMM runs in that namespace on the TAP with the MAC the result gives
/// the VM, and the guest takes the result's address, gateway and nameservers. Disposing runs CNI DEL and removes the
/// namespace, as does a failed ADD.
/// </summary>
internal sealed partial class VmCniNetwork : IAsyncDisposable
{
    /// <summary>Where VMs' network namespaces are pinned, under the names <c>ip netns</c> lists.</summary>
    public const string NamespaceDirectory = "/var/run/netns";

    private readonly CniRunner _runner;
    private readonly CniNetworkConfig _network;
    private readonly CniAttachment _attachment;
    private readonly CniResult _result;
    private readonly ILogger _logger;
    private int _disposed;

    private VmCniNetwork(CniRunner runner, CniNetworkConfig network, CniAttachment attachment, CniResult result, CniVmInterface vmInterface, ILogger logger)
    {
        _runner = runner;
        _network = network;
        _attachment = attachment;
        _result = result;
        _logger = logger;
        Interface = vmInterface;
    }

    /// <summary>The VM's network namespace, where the VMM runs.</summary>
    public string NamespacePath => _attachment.NetnsPath;

    /// <summary>What the result gives the VM.</summary>
    public CniVmInterface Interface { get; }

    /// <summary>The network namespace path of VM <paramref name="vmId"/>.</summary>
    public static string NamespacePathOf(string vmId) => Path.Combine(NamespaceDirectory, vmId);

    /// <summary>
    /// Makes VM <paramref name="vmId"/>'s namespace and adds it to <paramref name="network"/>: a DEL first, as upstream,
    /// clears what a crashed shim of the same VM may have left (plugins take a DEL of nothing as done), then ADD.
    /// </summary>
    /// <exception cref="TtrpcException">FailedPrecondition naming the VM, the network and what failed; nothing is left behind.</exception>
    public static async Task<VmCniNetwork> AttachAsync(
        string vmId, CniNetworkRequest request, CniNetworkConfig network, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(network);
        var runner = new CniRunner(new CniRunnerOptions(request.BinPath));
        var attachment = new CniAttachment(vmId, NamespacePathOf(vmId), request.InterfaceName, request.Args);
        try
        {
            await NetworkNamespace.CreateAsync(attachment.NetnsPath, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw Failed(vmId, network, $"making its network namespace: {e.Message}", e);
        }

        CniResult? result = null;
        try
        {
            await runner.DeleteAsync(network, attachment, null, cancellationToken).ConfigureAwait(false);
            result = await runner.AddAsync(network, attachment, cancellationToken).ConfigureAwait(false);
            CniVmInterface vmInterface = CniVmInterface.From(result, vmId, attachment.NetnsPath);
            LogAttached(logger, vmId, network.Name, vmInterface.Address, vmInterface.TapName, attachment.NetnsPath);
            return new VmCniNetwork(runner, network, attachment, result, vmInterface, logger);
        }
        catch (Exception e) when (e is CniPluginException or InvalidDataException or ArgumentException or IOException or OperationCanceledException)
        {
            await TearDownAsync(runner, network, attachment, result, logger).ConfigureAwait(false);
            if (e is OperationCanceledException)
            {
                throw;
            }

            throw Failed(vmId, network, e.Message, e);
        }
    }

    /// <summary>
    /// <paramref name="config"/> and <paramref name="devices"/> with this network: its one interface on the TAP with the
    /// VM's MAC, the VMM in its namespace, the guest's kernel arguments, and this object to release when the VM ends.
    /// </summary>
    public (RuntimeConfig Config, VmDevices Devices) Apply(RuntimeConfig config, VmDevices devices)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(devices);
        return (
            config with { KernelArgs = $"{config.KernelArgs} {Interface.KernelArgs}" },
            devices with
            {
                NetworkInterfaces = [new VmmNetworkInterface(GuestNetwork.InterfaceId(0), Interface.TapName, Interface.Mac)],
                NetworkNamespace = NamespacePath,
                HostNetwork = this,
            });
    }

    /// <summary>Runs CNI DEL with the ADD's result and removes the namespace; once, whatever fails (failures are logged).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await TearDownAsync(_runner, _network, _attachment, _result, _logger).ConfigureAwait(false);
        }
    }

    // The namespace goes even when DEL fails: what is left in it (the veth, the TAP) goes with it.
    private static async Task TearDownAsync(CniRunner runner, CniNetworkConfig network, CniAttachment attachment, CniResult? result, ILogger logger)
    {
        try
        {
            await runner.DeleteAsync(network, attachment, result, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CniPluginException or ArgumentException or IOException)
        {
            LogDeleteFailed(logger, attachment.ContainerId, network.Name, e.Message);
        }

        try
        {
            NetworkNamespace.Remove(attachment.NetnsPath);
        }
        catch (IOException e)
        {
            LogDeleteFailed(logger, attachment.ContainerId, network.Name, e.Message);
        }
    }

    private static TtrpcException Failed(string vmId, CniNetworkConfig network, string problem, Exception inner) =>
        new(StatusCode.FailedPrecondition, $"create vm \"{vmId}\": CNI network \"{network.Name}\" ({network.Source}): {problem}", inner);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId} is on CNI network {Network}: {Address} through {Tap} in {Netns}")]
    private static partial void LogAttached(ILogger logger, string vmId, string network, CidrAddress address, string tap, string netns);

    [LoggerMessage(Level = LogLevel.Warning, Message = "vm {VmId}: removing it from CNI network {Network} failed: {Reason}")]
    private static partial void LogDeleteFailed(ILogger logger, string vmId, string network, string reason);
}
