namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>A memory balloon that lets the host take memory back from the guest.</summary>
/// <param name="AmountMib">Target balloon size in MiB (memory taken from the guest).</param>
/// <param name="DeflateOnOom">Whether the guest may deflate the balloon under memory pressure.</param>
/// <param name="StatsPollingIntervalSeconds">Statistics refresh interval; 0 disables statistics.</param>
/// <param name="FreePageReporting">
/// Whether the guest reports the memory it frees, which the VMM then gives back to the host (virtio-balloon free page
/// reporting): a guest touches memory once and keeps it otherwise, whatever it frees.
/// </param>
public sealed record BalloonDevice(int AmountMib, bool DeflateOnOom, int StatsPollingIntervalSeconds = 0, bool FreePageReporting = false)
{
    /// <summary>The longest statistics interval: Firecracker keeps it in 16 bits.</summary>
    public const int MaxStatsPollingIntervalSeconds = ushort.MaxValue;
}
