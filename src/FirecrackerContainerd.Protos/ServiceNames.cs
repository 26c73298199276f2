namespace FirecrackerContainerd.Protos;

/// <summary>The ttrpc service strings of the APIs whose messages this assembly holds (the proto package plus service name).</summary>
public static class ServiceNames
{
    /// <summary>The shim Task API that containerd calls.</summary>
    public const string TaskV2 = "containerd.task.v2.Task";

    /// <summary>
    /// containerd 2.x's name for the same Task API (its messages and methods are wire-identical to v2's); 2.x calls it
    /// when a shim's bootstrap parameters say version 3.
    /// </summary>
    public const string TaskV3 = "containerd.task.v3.Task";

    /// <summary>containerd's ttrpc events service that shims forward events to.</summary>
    public const string Events = "containerd.services.events.ttrpc.v1.Events";

    /// <summary>The fccontrol API (its proto file has no package).</summary>
    public const string Firecracker = "Firecracker";

    /// <summary>The agent's own service (its version, the VM metadata document).</summary>
    public const string Agent = "Agent";

    /// <summary>The agent's service for the pod a VM runs (its files, shared memory and emptyDir volumes).</summary>
    public const string Pod = "Pod";

    /// <summary>The agent's drive mounting service.</summary>
    public const string DriveMounter = "DriveMounter";

    /// <summary>The agent's IO proxy service.</summary>
    public const string IOProxy = "IOProxy";

    /// <summary>The agent's event long-poll service.</summary>
    public const string EventBridge = "aws.firecracker.containerd.eventbridge.getter";
}
