using System.Collections.Immutable;
using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Vmm.Machine;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>
/// What a CreateVM request makes, checked before anything is made: the runtime configuration with the request's
/// machine settings, the VM's devices, and the CNI network it joins when it boots, if it names one.
/// </summary>
/// <param name="Config">The runtime configuration with the request's sizes, kernel, arguments, slots and timeout.</param>
/// <param name="Devices">The static interfaces, drive mounts and balloon.</param>
/// <param name="Cni">The CNI interface, or null.</param>
/// <param name="CniNetwork">The CNI network's configuration, read from its directory, or null.</param>
internal sealed record CreateVmPlan(RuntimeConfig Config, VmDevices Devices, CniNetworkRequest? Cni, CniNetworkConfig? CniNetwork)
{
    private const int MaxKernelArgsLength = 2048;
    private const int DefaultVcpuCount = 1;
    private const int DefaultMemSizeMib = 128;
    private const int MaxMemSizeMib = 1024 * 1024;

    /// <summary>
    /// What <paramref name="request"/> asks for, checked: <paramref name="config"/> with the request's sizes, kernel,
    /// slots and timeout, the VM's devices and its CNI network, if any (read, not yet joined). Every problem of the
    /// machine settings is listed in one InvalidArgument.
    /// </summary>
    /// <exception cref="TtrpcException">InvalidArgument or Unimplemented, naming the fields.</exception>
    public static CreateVmPlan From(RuntimeConfig config, CreateVMRequest request)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(request);
        RejectUnsupported(request);
        var problems = new List<string>();
        // As upstream: what MachineCfg leaves out is 1 vCPU and 128 MiB. The configuration's sizes are for the VMs
        // a container's Create boots.
        RuntimeConfig configured = config with { VcpuCount = DefaultVcpuCount, MemSizeMib = DefaultMemSizeMib };
        if (request.MachineCfg is { } machine)
        {
            if (machine.VcpuCount > 0)
            {
                if (machine.VcpuCount > 32)
                {
                    problems.Add($"MachineCfg.VcpuCount {machine.VcpuCount} is above 32");
                }

                configured.VcpuCount = (int)Math.Min(machine.VcpuCount, 32);
            }

            if (machine.MemSizeMib > 0)
            {
                if (machine.MemSizeMib is < 128 or > MaxMemSizeMib)
                {
                    problems.Add($"MachineCfg.MemSizeMib {machine.MemSizeMib} is not between 128 and {MaxMemSizeMib}");
                }

                configured.MemSizeMib = (int)Math.Min(machine.MemSizeMib, MaxMemSizeMib);
            }
        }

        BalloonDevice? balloon = BalloonControl.FromCreateRequest(request.BalloonDevice, configured.MemSizeMib, problems);
        if (request.ContainerCount != 0)
        {
            if (request.ContainerCount is < 1 or > 16)
            {
                problems.Add($"ContainerCount {request.ContainerCount} is not between 1 and 16");
            }

            configured.ContainerSlots = request.ContainerCount;
        }

        if (request.KernelImagePath.Length > 0)
        {
            if (!Path.IsPathFullyQualified(request.KernelImagePath) || !File.Exists(request.KernelImagePath))
            {
                problems.Add($"KernelImagePath \"{request.KernelImagePath}\" is not an absolute path of an existing file");
            }

            configured.KernelImagePath = request.KernelImagePath;
        }

        if (request.KernelArgs.Length > 0)
        {
            if (request.KernelArgs.Length > MaxKernelArgsLength || request.KernelArgs.Any(char.IsControl))
            {
                problems.Add($"KernelArgs must be at most {MaxKernelArgsLength} characters without control characters");
            }

            configured.KernelArgs = request.KernelArgs;
        }

        if (request.TimeoutSeconds > 0)
        {
            configured.AgentTimeoutSeconds = (int)Math.Min(request.TimeoutSeconds, 3600);
        }

        CniNetworkRequest? cni = CniNetworkRequest.FromRequest(request);
        CniNetworkConfig? cniNetwork = null;
        ImmutableArray<NetworkInterface> interfaces = [];
        if (cni is null)
        {
            (interfaces, string networkArgs) = GuestNetwork.FromRequest(request, GuestNetwork.IsHostTapDevice);
            if (networkArgs.Length > 0)
            {
                configured.KernelArgs = $"{configured.KernelArgs} {networkArgs}";
            }
        }
        else
        {
            try
            {
                cniNetwork = cni.LoadNetwork();
            }
            catch (CniConfigException e)
            {
                problems.Add($"NetworkInterfaces[0].CNIConfig: {e.Message}");
            }
        }

        return problems.Count == 0
            ? new CreateVmPlan(configured, new VmDevices(interfaces, DriveMounts.Validate(request.VMID, request.DriveMounts, configured.Vmm), balloon), cni, cniNetwork)
            : throw new TtrpcException(StatusCode.InvalidArgument, $"create vm \"{request.VMID}\": {string.Join("; ", problems)}");
    }

    /// <summary>
    /// The configuration and devices the VM boots with: as checked, or, on a CNI network, with the network joined now
    /// (<see cref="VmCniNetwork"/>), which the VM then owns.
    /// </summary>
    /// <exception cref="TtrpcException">FailedPrecondition: joining the CNI network failed; nothing of it is left.</exception>
    public async Task<(RuntimeConfig Config, VmDevices Devices)> MakeAsync(string vmId, ILogger logger, CancellationToken cancellationToken)
    {
        if (Cni is null || CniNetwork is null)
        {
            return (Config, Devices);
        }

        VmCniNetwork network = await VmCniNetwork.AttachAsync(vmId, Cni, CniNetwork, logger, cancellationToken).ConfigureAwait(false);
        return network.Apply(Config, Devices);
    }

    private static void RejectUnsupported(CreateVMRequest request)
    {
        string? unsupported =
            request.RootDrive is not null ? "RootDrive (the guest's root is the initramfs of the runtime configuration)"
            : request.JailerConfig is not null ? "JailerConfig (the runtime configuration's jail section confines every VM; a VM's own uid, cgroup, cpuset or network namespace cannot be asked for)"
            : request.LogFifoPath.Length > 0 ? "LogFifoPath (the VMM's console goes to the shim's log)"
            : request.MetricsFifoPath.Length > 0 ? "MetricsFifoPath (the QEMU driver has no metrics stream)"
            : request.MachineCfg is { CPUTemplate.Length: > 0 } ? "MachineCfg.CPUTemplate (CPU templates are not supported)"
            : request.MachineCfg is { HtEnabled: true } ? "MachineCfg.HtEnabled (simultaneous multithreading is not supported)"
            : null;
        if (unsupported is not null)
        {
            throw new TtrpcException(StatusCode.Unimplemented, $"create vm \"{request.VMID}\": {unsupported}");
        }
    }
}
