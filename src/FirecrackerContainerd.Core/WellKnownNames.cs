namespace FirecrackerContainerd.Core;

/// <summary>Names shared with upstream firecracker-containerd, kept so its clients and configs work unchanged.</summary>
public static class WellKnownNames
{
    /// <summary>The containerd runtime name that selects this runtime.</summary>
    public const string RuntimeName = "aws.firecracker";

    /// <summary>The shim executable containerd derives from <see cref="RuntimeName"/>.</summary>
    public const string ShimBinaryName = "containerd-shim-aws-firecracker";

    /// <summary>OCI annotation that names the VM a container joins.</summary>
    public const string VmIdAnnotation = "aws.firecracker.vm.id";

    /// <summary>Environment variable that gives a shim its VM id.</summary>
    public const string VmIdEnvironmentVariable = "FIRECRACKER_VM_ID";

    /// <summary>vsock port on which the guest agent serves ttrpc.</summary>
    public const uint AgentVsockPort = 10789;

    /// <summary>First vsock port used for container stdio.</summary>
    public const uint StdioBaseVsockPort = 11000;

    /// <summary>The shim address file containerd reads to reconnect after a restart.</summary>
    public const string ShimAddrFileName = "address";

    /// <summary>The FIFO containerd creates for the shim's log.</summary>
    public const string ShimLogFifoName = "log";

    /// <summary>The Firecracker API socket in the VM directory.</summary>
    public const string FirecrackerSockName = "firecracker.sock";

    /// <summary>The hybrid vsock Unix socket in the VM directory.</summary>
    public const string FirecrackerVSockName = "firecracker.vsock";

    /// <summary>The FIFO the VMM writes its log to.</summary>
    public const string FirecrackerLogFifoName = "fc-logs.fifo";

    /// <summary>The FIFO the VMM writes its metrics to.</summary>
    public const string FirecrackerMetricsFifoName = "fc-metrics.fifo";

    /// <summary>The OCI runtime config in a bundle.</summary>
    public const string OciConfigName = "config.json";

    /// <summary>The rootfs directory in a bundle.</summary>
    public const string BundleRootfsName = "rootfs";

    /// <summary>Where the guest keeps each container's bundle.</summary>
    public const string VmBundleRoot = "/container";

    /// <summary>The guest directory holding the VM's metadata document, mounted read-only into every container.</summary>
    public const string GuestMetadataDirectory = "/run/fc-metadata";

    /// <summary>The guest directory holding what the VM's pod shares: its files, shared memory and emptyDir volumes.</summary>
    public const string GuestPodRoot = "/run/fc-pod";

    /// <summary>The guest directory of the agent's own state (the OCI runtime's root, console sockets).</summary>
    public const string GuestAgentStateDirectory = "/run/fc-agent";
}
