using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>
/// Which VM a task runs in, decided here for everything that names the VM: the shim socket (one shim per VM), the VM
/// directory a Create boots or joins and the <c>delete</c> verb removes, and the VM the shim's control API serves.
/// A Kubernetes pod is one VM: a task of containerd's CRI plugin runs in the VM of its pod's sandbox (the annotation
/// <c>io.kubernetes.cri.sandbox-id</c>, which the sandbox carries too). Otherwise the OCI annotation
/// <c>aws.firecracker.vm.id</c> wins, then the environment variable <c>FIRECRACKER_VM_ID</c> (containerd passes its
/// environment to every shim invocation), then the task's own id; the VM id must follow containerd's identifier
/// rules, since it names a directory.
/// </summary>
/// <param name="environment">Reads an environment variable (the shim's own environment in production).</param>
internal sealed class VmIdentity(Func<string, string?> environment)
{
    /// <summary>The identity as this process's environment decides it.</summary>
    public static VmIdentity OfThisProcess { get; } = new(Environment.GetEnvironmentVariable);

    /// <summary>The VM of task <paramref name="taskId"/>, whose bundle is <paramref name="bundlePath"/>.</summary>
    /// <param name="bundlePath">The task's bundle, whose config.json may carry the annotation.</param>
    /// <param name="taskId">The task's id: its VM's id when nothing else names one.</param>
    /// <exception cref="InvalidVmIdException">The bundle's annotations cannot be read, or the VM id breaks the identifier rules.</exception>
    public string Resolve(string bundlePath, string taskId)
    {
        string? annotated;
        try
        {
            var bundle = new BundleDir(bundlePath);
            annotated = bundle.Annotation(Pods.CriTask.SandboxIdAnnotation) ?? bundle.VMID();
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            throw new InvalidVmIdException(e.Message, e);
        }

        // An empty variable is an unset one: `FIRECRACKER_VM_ID=` in a unit file means "no shared VM".
        string? fromEnvironment = environment(WellKnownNames.VmIdEnvironmentVariable) is { Length: > 0 } set ? set : null;
        string vmId = annotated ?? fromEnvironment ?? taskId;
        try
        {
            Identifiers.Validate(vmId);
        }
        catch (InvalidIdentifierException e)
        {
            throw new InvalidVmIdException($"invalid vm id: {e.Message}", e);
        }

        return vmId;
    }

    /// <summary>
    /// The id the task's shim socket is keyed by: its VM's, or the task's own when <see cref="Resolve"/> refuses the VM
    /// id. Such a task still gets a shim (containerd's <c>start</c> must answer with an address), whose Create then
    /// refuses it with the reason.
    /// </summary>
    public string SocketKey(string bundlePath, string taskId)
    {
        try
        {
            return Resolve(bundlePath, taskId);
        }
        catch (InvalidVmIdException)
        {
            return taskId;
        }
    }
}
