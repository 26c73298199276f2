using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Runtime.VmControl;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Runtime.Pods;

/// <summary>
/// The VM a pod's sandbox boots: sized from the pod's resources when the kubelet gave them (vCPUs from the CPU quota,
/// memory from the limit plus <see cref="RuntimeConfig.PodMemoryOverheadMib"/>), else from the runtime configuration;
/// on the pod's network when it has one (<see cref="PodNetwork"/>: the VMM runs in the pod's network namespace, its
/// interface on the TAP with the veth's MAC, and the guest takes the veth's address and default route).
/// </summary>
internal static class PodVm
{
    /// <summary>Most vCPUs a pod's quota gets (the runtime configuration's own bound).</summary>
    public const int MaxVcpus = 32;

    /// <summary>The guest's interface id for the pod network.</summary>
    public const string InterfaceId = "pod0";

    /// <summary>The configuration and devices the sandbox <paramref name="task"/> of <paramref name="spec"/> boots its VM with.</summary>
    /// <exception cref="PodNetworkException">The pod's network could not be carried into the VM.</exception>
    public static async Task<(RuntimeConfig Config, VmDevices Devices)> PlanAsync(
        CriTask task, JsonObject spec, RuntimeConfig config, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(config);
        RuntimeConfig sized = Size(task, config);
        if (NetworkNamespacePath(spec) is not { } netns)
        {
            // A host-network pod: CRI made no namespace and ran no CNI. The VM's network is its own, loopback only.
            return (sized, VmDevices.None);
        }

        PodNetwork network = await PodNetwork.AttachAsync(netns, cancellationToken).ConfigureAwait(false);
        string address = string.Create(CultureInfo.InvariantCulture, $"{network.Address}/{network.PrefixLength}");
        string kernelArgs = $"{sized.KernelArgs} {GuestNetwork.NetArgument(network.Mac, address, network.Gateway?.ToString() ?? string.Empty)}";
        var devices = new VmDevices(
            [new NetworkInterface(InterfaceId, PodNetwork.TapName, network.Mac)],
            [],
            null,
            netns,
            network);
        return (sized with { KernelArgs = kernelArgs }, devices);
    }

    /// <summary>The runtime configuration with the pod's vCPUs and memory, where the kubelet gave them.</summary>
    public static RuntimeConfig Size(CriTask task, RuntimeConfig config)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(config);
        int vcpus = task.Vcpus is { } wanted ? Math.Clamp(wanted, 1, MaxVcpus) : config.VcpuCount;
        int memory = task.MemoryBytes is { } bytes
            ? (int)Math.Min(int.MaxValue, Math.Max(128, ((bytes + (1 << 20) - 1) >> 20) + config.PodMemoryOverheadMib))
            : config.MemSizeMib;
        return config with { VcpuCount = vcpus, MemSizeMib = memory };
    }

    /// <summary>The pod's network namespace file from the sandbox's spec, or null for a host-network pod.</summary>
    public static string? NetworkNamespacePath(JsonObject spec) =>
        spec["linux"] is JsonObject linux && linux["namespaces"] is JsonArray namespaces
            ? namespaces.OfType<JsonObject>()
                .Where(ns => ns["type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String && t.GetValue<string>() == "network")
                .Select(ns => ns["path"] is JsonValue p && p.GetValueKind() == JsonValueKind.String ? p.GetValue<string>() : null)
                .FirstOrDefault(p => p is { Length: > 0 })
            : null;
}
