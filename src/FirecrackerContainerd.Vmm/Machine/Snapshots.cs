namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>Where to write a snapshot of a paused machine and whether it holds all memory or only dirty pages.</summary>
/// <param name="SnapshotPath">File that receives the device and vCPU state.</param>
/// <param name="MemFilePath">File that receives guest memory.</param>
/// <param name="Type">Full memory, or only pages dirtied since the last snapshot.</param>
public sealed record SnapshotCreate(string SnapshotPath, string MemFilePath, SnapshotType Type = SnapshotType.Full);

/// <summary>Which snapshot a fresh VMM process restores instead of being configured.</summary>
/// <param name="SnapshotPath">File holding the device and vCPU state.</param>
/// <param name="MemFilePath">File holding guest memory.</param>
/// <param name="ResumeVm">Whether the machine runs at once after loading.</param>
/// <param name="TrackDirtyPages">Whether to track dirty pages for later diff snapshots.</param>
/// <param name="VsockUdsPathOverride">A new host path for the vsock socket, or null to keep the recorded one.</param>
public sealed record SnapshotLoad(
    string SnapshotPath,
    string MemFilePath,
    bool ResumeVm = true,
    bool TrackDirtyPages = false,
    string? VsockUdsPathOverride = null);

/// <summary>The kind of snapshot to create.</summary>
public enum SnapshotType
{
    /// <summary>All guest memory.</summary>
    Full,

    /// <summary>Only memory dirtied since the previous snapshot (needs dirty page tracking).</summary>
    Diff,
}
