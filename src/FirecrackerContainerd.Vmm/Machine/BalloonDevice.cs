namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>A memory balloon that lets the host take memory back from the guest.</summary>
/// <param name="AmountMib">Target balloon size in MiB (memory taken from the guest).</param>
/// <param name="DeflateOnOom">Whether the guest may deflate the balloon under memory pressure.</param>
/// <param name="StatsPollingIntervalSeconds">Statistics refresh interval; 0 disables statistics.</param>
public sealed record BalloonDevice(int AmountMib, bool DeflateOnOom, int StatsPollingIntervalSeconds = 0)
{
    /// <summary>The longest statistics interval: Firecracker keeps it in 16 bits.</summary>
    public const int MaxStatsPollingIntervalSeconds = ushort.MaxValue;
}
