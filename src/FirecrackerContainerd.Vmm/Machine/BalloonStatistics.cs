namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>What a memory balloon aims to hold, what it holds, and what the guest last said about its memory.</summary>
/// <remarks>
/// Counted in 4 KiB pages as Firecracker's <c>GET /balloon/statistics</c> does. Every number comes from the VMM,
/// which got most of them from the guest: <see cref="Create"/> refuses negative or impossible values rather than
/// passing them on.
/// </remarks>
/// <param name="TargetPages">Pages the balloon is asked to hold.</param>
/// <param name="ActualPages">Pages the guest has actually given to the balloon.</param>
/// <param name="Guest">The guest's memory statistics, or null when it has not reported any yet.</param>
public sealed record BalloonStatistics(long TargetPages, long ActualPages, GuestMemoryStatistics? Guest)
{
    /// <summary>The balloon's page size (virtio-balloon's PFN unit), in bytes.</summary>
    public const int PageSize = 4096;

    /// <summary>Pages in one MiB.</summary>
    public const int PagesPerMib = (1 << 20) / PageSize;

    /// <summary>The target in whole MiB.</summary>
    public long TargetMib => TargetPages / PagesPerMib;

    /// <summary>What the guest has given, in whole MiB.</summary>
    public long ActualMib => ActualPages / PagesPerMib;

    /// <summary>Checks the VMM's numbers against a guest of <paramref name="memSizeMib"/> MiB.</summary>
    /// <exception cref="InvalidDataException">A number is negative or larger than the guest could have.</exception>
    public static BalloonStatistics Create(string vmId, int memSizeMib, long targetPages, long actualPages, GuestMemoryStatistics? guest)
    {
        long guestPages = (long)memSizeMib * PagesPerMib;
        CheckRange(vmId, "target pages", targetPages, guestPages);
        CheckRange(vmId, "actual pages", actualPages, guestPages);
        guest?.Check(vmId, (long)memSizeMib << 20);
        return new BalloonStatistics(targetPages, actualPages, guest);
    }

    internal static void CheckRange(string vmId, string what, long value, long max)
    {
        if (value < 0 || value > max)
        {
            throw new InvalidDataException($"vm \"{vmId}\": the VMM reported balloon {what} {value}, outside 0..{max}");
        }
    }
}

/// <summary>The memory statistics a guest's balloon driver reports; each is null when the guest did not report it.</summary>
/// <param name="SwapIn">Bytes swapped in.</param>
/// <param name="SwapOut">Bytes swapped out.</param>
/// <param name="MajorFaults">Major page faults.</param>
/// <param name="MinorFaults">Minor page faults.</param>
/// <param name="FreeMemory">Bytes not used for anything.</param>
/// <param name="TotalMemory">Bytes of memory the guest kernel manages.</param>
/// <param name="AvailableMemory">Bytes available to new programs without swapping (the guest's estimate).</param>
/// <param name="DiskCaches">Bytes of page cache that can be reclaimed without I/O.</param>
/// <param name="HugetlbAllocations">Successful huge page allocations.</param>
/// <param name="HugetlbFailures">Failed huge page allocations.</param>
public sealed record GuestMemoryStatistics(
    long? SwapIn,
    long? SwapOut,
    long? MajorFaults,
    long? MinorFaults,
    long? FreeMemory,
    long? TotalMemory,
    long? AvailableMemory,
    long? DiskCaches,
    long? HugetlbAllocations,
    long? HugetlbFailures)
{
    /// <summary>Whether the guest reported anything at all.</summary>
    public bool IsEmpty => this == Empty;

    /// <summary>No statistics reported.</summary>
    public static GuestMemoryStatistics Empty { get; } = new(null, null, null, null, null, null, null, null, null, null);

    // Memory sizes cannot exceed the guest's RAM; counters (swap traffic, faults, allocations) only grow, so
    // for them only the sign is checked.
    internal void Check(string vmId, long guestBytes)
    {
        foreach ((string name, long? value) in new[]
                 {
                     ("free memory", FreeMemory), ("total memory", TotalMemory), ("available memory", AvailableMemory),
                     ("disk caches", DiskCaches),
                 })
        {
            if (value is { } v)
            {
                BalloonStatistics.CheckRange(vmId, name, v, guestBytes);
            }
        }

        foreach ((string name, long? value) in new[]
                 {
                     ("swap in", SwapIn), ("swap out", SwapOut), ("major faults", MajorFaults), ("minor faults", MinorFaults),
                     ("hugetlb allocations", HugetlbAllocations), ("hugetlb failures", HugetlbFailures),
                 })
        {
            if (value is { } v)
            {
                BalloonStatistics.CheckRange(vmId, name, v, long.MaxValue);
            }
        }
    }
}
