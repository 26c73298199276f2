using System.Text.Json;

namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>One machine as the runtime drives it, whatever VMM runs it underneath.</summary>
/// <remarks>
/// The driver owns the VMM process: it starts it, stops it by pid and observes its exit.
/// <see cref="Exited"/> completes exactly once, whether the guest shut down, the VMM crashed or we killed it.
/// </remarks>
public interface IVirtualMachine : IAsyncDisposable
{
    /// <summary>The machine's identifier.</summary>
    string VmId { get; }

    /// <summary>The spec the machine was built from, with drive patches and balloon changes applied.</summary>
    MachineSpec Spec { get; }

    /// <summary>Host path of the hybrid vsock socket the runtime dials (CONNECT/OK), or null without vsock.</summary>
    string? VsockHostPath { get; }

    /// <summary>Host path of the VMM's own control socket: Firecracker's API socket, QEMU's QMP socket.</summary>
    string ControlSocketPath { get; }

    /// <summary>Completes when the VMM process has exited, with how it ended.</summary>
    Task<VmExit> Exited { get; }

    /// <summary>The VMM's last lines of output (the guest's serial console among them), oldest first; untrusted text.</summary>
    IReadOnlyList<string> RecentOutput();

    /// <summary>Starts the VMM, configures every device of <see cref="Spec"/> and boots the guest.</summary>
    Task StartAsync(CancellationToken cancellationToken);

    /// <summary>Starts the VMM and restores a snapshot into it instead of configuring devices.</summary>
    Task RestoreAsync(SnapshotLoad snapshot, CancellationToken cancellationToken);

    /// <summary>Asks the VMM for the machine's run state.</summary>
    Task<MachineState> GetStateAsync(CancellationToken cancellationToken);

    /// <summary>Stops the vCPUs.</summary>
    Task PauseAsync(CancellationToken cancellationToken);

    /// <summary>Lets paused vCPUs run again.</summary>
    Task ResumeAsync(CancellationToken cancellationToken);

    /// <summary>Points a running machine's drive at another backing file (the stub-drive swap).</summary>
    Task PatchDriveAsync(string driveId, string hostPath, CancellationToken cancellationToken);

    /// <summary>Changes the balloon's target size.</summary>
    Task UpdateBalloonAsync(int amountMib, CancellationToken cancellationToken);

    /// <summary>The balloon as it is now: target, deflate-on-OOM and statistics interval.</summary>
    Task<BalloonDevice> GetBalloonConfigAsync(CancellationToken cancellationToken);

    /// <summary>The balloon's target and actual size and the guest's memory statistics; only when statistics were on at boot.</summary>
    Task<BalloonStatistics> GetBalloonStatisticsAsync(CancellationToken cancellationToken);

    /// <summary>Changes how often the guest reports statistics; turning them on or off after boot is refused.</summary>
    Task UpdateBalloonStatisticsAsync(int pollingIntervalSeconds, CancellationToken cancellationToken);

    /// <summary>Replaces the metadata store with <paramref name="metadata"/> (a JSON object).</summary>
    Task SetMetadataAsync(JsonElement metadata, CancellationToken cancellationToken);

    /// <summary>Merges <paramref name="patch"/> (a JSON object, merge-patch semantics) into the metadata store.</summary>
    Task PatchMetadataAsync(JsonElement patch, CancellationToken cancellationToken);

    /// <summary>Makes the VMM write its metrics now.</summary>
    Task FlushMetricsAsync(CancellationToken cancellationToken);

    /// <summary>Writes a snapshot of the paused machine.</summary>
    Task CreateSnapshotAsync(SnapshotCreate snapshot, CancellationToken cancellationToken);

    /// <summary>Asks the guest to shut down, waits at most <paramref name="gracePeriod"/>, then kills the VMM.</summary>
    Task<VmExit> StopAsync(TimeSpan gracePeriod, CancellationToken cancellationToken);
}
