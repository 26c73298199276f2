using FirecrackerContainerd.Vmm.Firecracker.Api;
using FirecrackerContainerd.Vmm.Firecracker.Jailer;
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

    /// <summary>Run Firecracker inside the jailer, or null to run it directly.</summary>
    public JailerOptions? Jailer { get; init; }
}
