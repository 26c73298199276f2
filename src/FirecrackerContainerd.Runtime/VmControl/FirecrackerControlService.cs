using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Vmm.Machine;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>
/// The VM control API ("Firecracker" ttrpc service) of a shim: creates, pauses, resumes and stops the one VM
/// the shim serves (the same VM its Task service runs containers in), reports where its sockets are, and keeps
/// its metadata document.
/// </summary>
internal sealed partial class FirecrackerControlService(IShimVm shimVm, string vmId, ILogger logger)
{
    /// <summary>StopVM's timeout when the request names none (as upstream): it bounds the flush of the drive mounts.</summary>
    public static readonly TimeSpan DefaultStopTimeout = TimeSpan.FromSeconds(5);

    private const int MaxKernelArgsLength = 2048;
    private const int DefaultVcpuCount = 1;
    private const int DefaultMemSizeMib = 128;
    private const int MaxMemSizeMib = 1024 * 1024;
    private readonly VmMetadata _metadata = new();
    private readonly BalloonControl _balloon = new(vmId);

    /// <summary>Registers every control RPC in <paramref name="registry"/>.</summary>
    public TtrpcServiceRegistry Register(TtrpcServiceRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        const string name = ServiceNames.Firecracker;
        return registry
            .AddUnary(name, "CreateVM", CreateVMRequest.Parser, CreateVmAsync)
            .AddUnary(name, "StopVM", StopVMRequest.Parser, StopVmAsync)
            .AddUnary(name, "PauseVM", PauseVMRequest.Parser, PauseVmAsync)
            .AddUnary(name, "ResumeVM", ResumeVMRequest.Parser, ResumeVmAsync)
            .AddUnary(name, "GetVMInfo", GetVMInfoRequest.Parser, GetVmInfoAsync)
            .AddUnary(name, "SetVMMetadata", SetVMMetadataRequest.Parser, SetVmMetadataAsync)
            .AddUnary(name, "UpdateVMMetadata", UpdateVMMetadataRequest.Parser, UpdateVmMetadataAsync)
            .AddUnary(name, "GetVMMetadata", GetVMMetadataRequest.Parser, GetVmMetadataAsync)
            .AddUnary(name, "GetBalloonConfig", GetBalloonConfigRequest.Parser, (r, c) => _balloon.GetConfigAsync(Created(r.VMID).Machine, c.CancellationToken))
            .AddUnary(name, "UpdateBalloon", UpdateBalloonRequest.Parser, (r, c) => _balloon.UpdateAsync(Created(r.VMID).Machine, r, c.CancellationToken))
            .AddUnary(name, "GetBalloonStats", GetBalloonStatsRequest.Parser, (r, c) => _balloon.GetStatsAsync(Created(r.VMID).Machine, c.CancellationToken))
            .AddUnary(name, "UpdateBalloonStats", UpdateBalloonStatsRequest.Parser, (r, c) => _balloon.UpdateStatsAsync(Created(r.VMID).Machine, r, c.CancellationToken));
    }

    /// <summary>
    /// Boots the VM now with the request's machine settings over the runtime configuration's. A failed boot ends
    /// the shim (it serves one VM, once), as upstream's shim does.
    /// </summary>
    public async Task<CreateVMResponse> CreateVmAsync(CreateVMRequest request, TtrpcCallContext call)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(call);
        ValidateId(request.VMID);
        if (request.VMID != vmId)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"create vm \"{request.VMID}\": this shim serves vm \"{vmId}\"");
        }

        RejectUnsupported(request);
        (RuntimeConfig config, VmDevices devices) = Configure(LoadConfig(), request);
        TimeSpan timeout = TimeSpan.FromSeconds(config.AgentTimeoutSeconds);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(call.CancellationToken);
        bound.CancelAfter(timeout);
        MicroVm vm;
        try
        {
            vm = await shimVm.CreateAsync(vmId, config, devices, !request.ExitAfterAllTasksDeleted, bound.Token).ConfigureAwait(false);
        }
        catch (TtrpcException e) when (e.StatusCode == StatusCode.AlreadyExists)
        {
            throw;
        }
        catch (OperationCanceledException e) when (!call.CancellationToken.IsCancellationRequested)
        {
            shimVm.ExitAfterFailedCreate($"CreateVM for vm {vmId} timed out");
            throw new TtrpcException(StatusCode.DeadlineExceeded, $"create vm \"{vmId}\": the VM did not come up within {timeout.TotalSeconds:0} s", e);
        }
        catch
        {
            shimVm.ExitAfterFailedCreate($"CreateVM for vm {vmId} failed");
            throw;
        }

        LogCreated(logger, vmId, config.VcpuCount, config.MemSizeMib, config.ContainerSlots, !request.ExitAfterAllTasksDeleted);
        return new CreateVMResponse { VMID = vmId, SocketPath = vm.Machine.ControlSocketPath };
    }

    /// <summary>
    /// Stops the VM (its drive mounts flushed first, within the request's timeout), reports its tasks as killed and ends
    /// the shim.
    /// </summary>
    public async Task<Empty> StopVmAsync(StopVMRequest request, TtrpcCallContext call)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(call);
        _ = Created(request.VMID);
        TimeSpan timeout = request.TimeoutSeconds > 0 ? TimeSpan.FromSeconds(request.TimeoutSeconds) : DefaultStopTimeout;
        LogStopping(logger, vmId, timeout.TotalSeconds);
        await shimVm.StopAsync(timeout, call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    /// <summary>Stops the VM's vCPUs.</summary>
    public async Task<Empty> PauseVmAsync(PauseVMRequest request, TtrpcCallContext call)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(call);
        _ = Created(request.VMID);
        await shimVm.PauseAsync(call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    /// <summary>Lets the paused VM run again.</summary>
    public async Task<Empty> ResumeVmAsync(ResumeVMRequest request, TtrpcCallContext call)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(call);
        _ = Created(request.VMID);
        await shimVm.ResumeAsync(call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    /// <summary>
    /// Where the VM's sockets are, and its run state as the VMM reports it (QMP query-status under QEMU). The QEMU
    /// driver has no log or metrics FIFO and no cgroup of its own.
    /// </summary>
    public async Task<GetVMInfoResponse> GetVmInfoAsync(GetVMInfoRequest request, TtrpcCallContext call)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(call);
        MicroVm vm = Created(request.VMID);
        if (vm.Machine.Exited.IsCompleted)
        {
            throw new TtrpcException(StatusCode.NotFound, $"vm \"{vmId}\" has exited");
        }

        MachineState state = await vm.Machine.GetStateAsync(call.CancellationToken).ConfigureAwait(false);
        return new GetVMInfoResponse
        {
            VMID = vmId,
            SocketPath = vm.Machine.ControlSocketPath,
            VSockPath = vm.Machine.VsockHostPath ?? string.Empty,
            State = state.ToString(),
        };
    }

    /// <summary>Replaces the metadata document: in the guest (the agent's metadata file), and in the VMM's metadata service where it has one.</summary>
    public async Task<Empty> SetVmMetadataAsync(SetVMMetadataRequest request, TtrpcCallContext call)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(call);
        MicroVm vm = Created(request.VMID);
        JsonObject document = Parse(request.Metadata, "set metadata");
        using (JsonDocument element = JsonDocument.Parse(request.Metadata))
        {
            await ToMachineAsync(() => vm.Machine.SetMetadataAsync(element.RootElement, call.CancellationToken)).ConfigureAwait(false);
        }

        _metadata.Set(document);
        await vm.Agent.SetMetadataAsync(_metadata.ToJson(), call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    /// <summary>Merges a JSON merge patch into the metadata document; the guest gets the merged whole, the VMM's metadata service (where there is one) the patch.</summary>
    public async Task<Empty> UpdateVmMetadataAsync(UpdateVMMetadataRequest request, TtrpcCallContext call)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(call);
        MicroVm vm = Created(request.VMID);
        JsonObject patch = Parse(request.Metadata, "update metadata");
        using (JsonDocument element = JsonDocument.Parse(request.Metadata))
        {
            await ToMachineAsync(() => vm.Machine.PatchMetadataAsync(element.RootElement, call.CancellationToken)).ConfigureAwait(false);
        }

        try
        {
            _metadata.Merge(patch);
        }
        catch (ArgumentException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"vm \"{vmId}\": {e.Message}", e);
        }

        await vm.Agent.SetMetadataAsync(_metadata.ToJson(), call.CancellationToken).ConfigureAwait(false);
        return new Empty();
    }

    /// <summary>The metadata document as stored ("{}" before any Set).</summary>
    public Task<GetVMMetadataResponse> GetVmMetadataAsync(GetVMMetadataRequest request, TtrpcCallContext call)
    {
        ArgumentNullException.ThrowIfNull(request);
        _ = Created(request.VMID);
        return Task.FromResult(new GetVMMetadataResponse { Metadata = _metadata.ToJson() });
    }

    private MicroVm Created(string requestedId)
    {
        ValidateId(requestedId);
        return requestedId == vmId && shimVm.Current is { } vm
            ? vm
            : throw new TtrpcException(StatusCode.NotFound, $"vm \"{requestedId}\" was not created in this shim (it serves vm \"{vmId}\")");
    }

    private JsonObject Parse(string json, string operation)
    {
        try
        {
            return VmMetadata.ParseObject(json, operation);
        }
        catch (ArgumentException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"vm \"{vmId}\": {e.Message}", e);
        }
    }

    // A VMM without a metadata service (QEMU) leaves the shim's document as the only copy.
    private async Task ToMachineAsync(Func<Task> call)
    {
        try
        {
            await call().ConfigureAwait(false);
        }
        catch (NotSupportedException e)
        {
            LogMetadataShimOnly(logger, vmId, e.Message);
        }
    }

    private static void RejectUnsupported(CreateVMRequest request)
    {
        string? unsupported =
            request.RootDrive is not null ? "RootDrive (the guest's root is the initramfs of the runtime configuration)"
            : request.JailerConfig is not null ? "JailerConfig (the VMM runs without a jailer)"
            : request.LogFifoPath.Length > 0 ? "LogFifoPath (the VMM's console goes to the shim's log)"
            : request.MetricsFifoPath.Length > 0 ? "MetricsFifoPath (the QEMU driver has no metrics stream)"
            : request.MachineCfg is { CPUTemplate.Length: > 0 } ? "MachineCfg.CPUTemplate (CPU templates are not supported)"
            : request.MachineCfg is { HtEnabled: true } ? "MachineCfg.HtEnabled (simultaneous multithreading is not supported)"
            : null;
        if (unsupported is not null)
        {
            throw Unimplemented($"create vm \"{request.VMID}\": {unsupported}");
        }
    }

    /// <summary>
    /// What CreateVM asks for, checked: the runtime configuration with the request's sizes, kernel, slots and timeout,
    /// and the VM's devices. Every problem is listed in one InvalidArgument.
    /// </summary>
    private static (RuntimeConfig Config, VmDevices Devices) Configure(RuntimeConfig config, CreateVMRequest request)
    {
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

        (ImmutableArray<NetworkInterface> interfaces, string networkArgs) = GuestNetwork.FromRequest(request, GuestNetwork.IsHostTapDevice);
        if (networkArgs.Length > 0)
        {
            configured.KernelArgs = $"{configured.KernelArgs} {networkArgs}";
        }

        return problems.Count == 0
            ? (configured, new VmDevices(interfaces, DriveMounts.Validate(request.VMID, request.DriveMounts, configured.Vmm), balloon))
            : throw new TtrpcException(StatusCode.InvalidArgument, $"create vm \"{request.VMID}\": {string.Join("; ", problems)}");
    }

    private static RuntimeConfig LoadConfig()
    {
        try
        {
            return RuntimeConfig.Load();
        }
        catch (InvalidOperationException e)
        {
            throw new TtrpcException(StatusCode.FailedPrecondition, e.Message, e);
        }
    }

    private static void ValidateId(string id)
    {
        try
        {
            Identifiers.Validate(id);
        }
        catch (InvalidIdentifierException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"invalid vm id: {e.Message}", e);
        }
    }

    private static TtrpcException Unimplemented(string message) => new(StatusCode.Unimplemented, message);

    [LoggerMessage(Level = LogLevel.Information, Message = "CreateVM {VmId}: {Vcpus} vCPUs, {MemMib} MiB, {Slots} container slots, stays after its last task: {KeepAlive}")]
    private static partial void LogCreated(ILogger logger, string vmId, int vcpus, int memMib, int slots, bool keepAlive);

    [LoggerMessage(Level = LogLevel.Information, Message = "StopVM {VmId}: the drive mounts have {TimeoutSeconds} s to be flushed")]
    private static partial void LogStopping(ILogger logger, string vmId, double timeoutSeconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "vm {VmId}: metadata kept by the shim only: {Reason}")]
    private static partial void LogMetadataShimOnly(ILogger logger, string vmId, string reason);
}
