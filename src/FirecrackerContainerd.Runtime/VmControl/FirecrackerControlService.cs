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
    /// Boots the VM now with the request's machine settings over the runtime configuration's, on its CNI network when
    /// it names one (<see cref="VmCniNetwork"/>). A failed boot ends the shim (it serves one VM, once), as upstream's
    /// shim does.
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

        CreateVmPlan plan = CreateVmPlan.From(LoadConfig(), request);
        TimeSpan timeout = TimeSpan.FromSeconds(plan.Config.AgentTimeoutSeconds);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(call.CancellationToken);
        bound.CancelAfter(timeout);
        MicroVm vm;
        try
        {
            vm = await shimVm.CreateAsync(vmId, token => plan.MakeAsync(vmId, logger, token), !request.ExitAfterAllTasksDeleted, bound.Token).ConfigureAwait(false);
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

        LogCreated(logger, vmId, plan.Config.VcpuCount, plan.Config.MemSizeMib, plan.Config.ContainerSlots, !request.ExitAfterAllTasksDeleted);
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

    [LoggerMessage(Level = LogLevel.Information, Message = "CreateVM {VmId}: {Vcpus} vCPUs, {MemMib} MiB, {Slots} container slots, stays after its last task: {KeepAlive}")]
    private static partial void LogCreated(ILogger logger, string vmId, int vcpus, int memMib, int slots, bool keepAlive);

    [LoggerMessage(Level = LogLevel.Information, Message = "StopVM {VmId}: the drive mounts have {TimeoutSeconds} s to be flushed")]
    private static partial void LogStopping(ILogger logger, string vmId, double timeoutSeconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "vm {VmId}: metadata kept by the shim only: {Reason}")]
    private static partial void LogMetadataShimOnly(ILogger logger, string vmId, string reason);
}
