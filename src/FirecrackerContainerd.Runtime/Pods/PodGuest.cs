using FirecrackerContainerd.Runtime.Vm;

namespace FirecrackerContainerd.Runtime.Pods;

/// <summary>Puts what a pod's task needs into the guest before the task is created there: the pod's directories, its files, its volumes.</summary>
internal static class PodGuest
{
    /// <summary>Prepares the pod (once per VM; again is harmless), copies <paramref name="plan"/>'s host files in, makes its volumes and sets its network sysctls.</summary>
    /// <exception cref="IOException">A host file could not be read.</exception>
    public static async Task InstallAsync(IGuestAgent agent, string sandboxId, PodSpecPlan plan, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(agent);
        ArgumentNullException.ThrowIfNull(plan);
        await agent.PreparePodAsync(sandboxId, cancellationToken).ConfigureAwait(false);
        foreach (PodFile file in plan.Files)
        {
            // Read now, when the container is created: the copy is what the file held then (the kubelet and CRI
            // write these files before they create the container).
            byte[] content = await File.ReadAllBytesAsync(file.HostPath, cancellationToken).ConfigureAwait(false);
            if (content.Length > PodSpec.MaxFileBytes)
            {
                throw new IOException($"{file.HostPath} grew to {content.Length} bytes, more than the {PodSpec.MaxFileBytes} a host file may have to be copied into the VM");
            }

            UnixFileMode mode = File.GetUnixFileMode(file.HostPath) & (UnixFileMode)0x1FF;
            await agent.PutPodFileAsync(sandboxId, file.Name, content, mode, cancellationToken).ConfigureAwait(false);
        }

        foreach (string volume in plan.Volumes)
        {
            await agent.EnsurePodVolumeAsync(sandboxId, volume, cancellationToken).ConfigureAwait(false);
        }

        if (plan.NetworkSysctls.Count > 0)
        {
            await agent.SetPodNetworkSysctlsAsync(sandboxId, plan.NetworkSysctls, cancellationToken).ConfigureAwait(false);
        }
    }
}
