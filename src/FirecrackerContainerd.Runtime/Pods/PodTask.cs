using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc;

namespace FirecrackerContainerd.Runtime.Pods;

/// <summary>
/// A task Create as the shim runs it: its OCI spec as containerd wrote it and, for a task of containerd's CRI plugin,
/// its place in the pod and the spec rewritten for the pod's VM. Everything here is decided before any VM is booted
/// or joined, so a task the VM cannot serve is refused without side effects.
/// </summary>
internal sealed class PodTask
{
    private PodTask(string id, JsonObject hostSpec, byte[] specBytes, CriTask? cri, PodSpecPlan? plan)
    {
        Id = id;
        HostSpec = hostSpec;
        GuestSpec = specBytes;
        Cri = cri;
        Plan = plan;
    }

    /// <summary>The task's id.</summary>
    public string Id { get; }

    /// <summary>The spec as containerd wrote it.</summary>
    public JsonObject HostSpec { get; }

    /// <summary>The spec the agent gets: containerd's own, or the pod's rewrite of it.</summary>
    public byte[] GuestSpec { get; }

    /// <summary>The task's place in its pod, or null for a task that is not the CRI plugin's.</summary>
    public CriTask? Cri { get; }

    /// <summary>What the guest must hold for the task, for a CRI task.</summary>
    public PodSpecPlan? Plan { get; }

    /// <summary>Reads the spec in <paramref name="bundle"/> and plans the task.</summary>
    /// <exception cref="TtrpcException">InvalidArgument: the spec is unreadable, a CRI annotation is malformed, or a mount cannot be served in the VM.</exception>
    public static PodTask Read(string id, string bundle)
    {
        byte[] bytes;
        JsonObject spec;
        try
        {
            bytes = new BundleDir(bundle).ReadOCIConfig();
            spec = JsonNode.Parse(bytes) as JsonObject ?? throw new InvalidDataException("the spec is not a JSON object");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or JsonException)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"create {id}: reading the bundle's OCI spec: {e.Message}", e);
        }

        try
        {
            if (CriTask.Of(spec) is not { } cri)
            {
                return new PodTask(id, spec, bytes, null, null);
            }

            PodSpecPlan plan = PodSpec.Plan(id, spec, cri);
            return new PodTask(id, spec, Encoding.UTF8.GetBytes(plan.Spec.ToJsonString()), cri, plan);
        }
        catch (InvalidDataException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"create {id}: {e.Message}", e);
        }
        catch (PodMountException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, e.Message, e);
        }
    }

    /// <summary>
    /// Boots or joins the task's VM: a pod's sandbox boots it sized and networked for the pod; a pod's container
    /// joins its sandbox's VM and never boots one (the sandbox's network is only carried into the VM it boots);
    /// any other task boots or joins the VM as before. The pod's directories, files and volumes are put in the guest.
    /// </summary>
    /// <exception cref="TtrpcException">FailedPrecondition: a container's sandbox VM is not running, or the pod's network could not be carried in.</exception>
    public async Task<MicroVm> EnsureVmAsync(IShimVm vm, string vmId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(vm);
        if (Cri is null || Plan is null)
        {
            return await vm.EnsureAsync(vmId, cancellationToken).ConfigureAwait(false);
        }

        CriTask cri = Cri;
        MicroVm running;
        try
        {
            running = await vm.EnsureAsync(vmId, cri.Kind == CriTaskKind.Sandbox
                ? (config, ct) => PodVm.PlanAsync(cri, HostSpec, config, ct)
                : (_, _) => throw new TtrpcException(StatusCode.FailedPrecondition, $"create {Id}: the VM of pod sandbox {cri.SandboxId} is not running in this shim"),
                cancellationToken).ConfigureAwait(false);
        }
        catch (PodNetworkException e)
        {
            throw new TtrpcException(StatusCode.FailedPrecondition, $"create {Id}: {e.Message}", e);
        }

        try
        {
            await PodGuest.InstallAsync(running.Agent, cri.SandboxId, Plan, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new TtrpcException(StatusCode.FailedPrecondition, $"create {Id}: {e.Message}", e);
        }

        return running;
    }
}
