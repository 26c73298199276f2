using FirecrackerContainerd.Vmm.Firecracker.Api;
using FirecrackerContainerd.Vmm.Jail;
using FirecrackerContainerd.Vmm.Launch;

namespace FirecrackerContainerd.Vmm.Firecracker;

/// <summary>Settings of the Firecracker driver; the defaults follow firecracker-go-sdk where it has one.</summary>
public sealed record FirecrackerOptions
{
    /// <summary>The Firecracker binary: a path, or a name looked up on PATH.</summary>
    public string FirecrackerBinary { get; init; } = "firecracker";

    /// <summary>setpriv used to give the VMM PR_SET_PDEATHSIG=SIGKILL; null starts it directly.</summary>
    public string? SetprivPath { get; init; } = VmmLaunch.DefaultSetprivPath;

    /// <summary>How long the API socket may take to answer after the process starts (the Go SDK uses 3 s).</summary>
    public TimeSpan SocketReadyTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Bound on each API request.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Level Firecracker logs at into <c>fc-logs.fifo</c>.</summary>
    public FirecrackerLogLevel LogLevel { get; init; } = FirecrackerLogLevel.Info;

    /// <summary>
    /// Run Firecracker through its jailer, confined as these settings say (a uid from their range, their chroot base,
    /// cgroup parent and limits, their jailer and drive expose policy; docs/jail.md), or null to run it directly as root.
    /// </summary>
    public JailSettings? Jail { get; init; }

    /// <summary>The host's cgroup hierarchy for the jail; null detects it (<see cref="VmCgroups.Detect"/>) when the VM starts.</summary>
    public VmCgroups? Cgroups { get; init; }
}
