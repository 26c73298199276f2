using System.Text.Json;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Vmm.Qemu;

/// <summary>
/// The QMP side of a QEMU machine's virtio-balloon device (<c>-device virtio-balloon-device,id=balloon</c>):
/// setting its target, reading what the guest gave, and the guest's statistics.
/// </summary>
/// <remarks>
/// QEMU speaks of the guest's remaining RAM where Firecracker speaks of the balloon's size: <c>balloon</c> takes,
/// and <c>query-balloon</c> answers, the bytes left to the guest. The statistics are properties of the device
/// object: <c>guest-stats-polling-interval</c> (seconds, 0 = off) and <c>guest-stats</c> (the last report).
/// Everything QEMU answers is checked before use: the guest fills in the statistics.
/// </remarks>
internal sealed class QemuBalloon
{
    /// <summary>Where the device sits in QEMU's object tree (its id is "balloon").</summary>
    public const string DevicePath = "/machine/peripheral/balloon";

    /// <summary>QEMU's marker for a statistic the guest never reported: -1 stored in an unsigned 64-bit field.</summary>
    private const ulong NotReported = ulong.MaxValue;

    private readonly QmpClient _qmp;
    private readonly string _vmId;
    private readonly int _memSizeMib;

    /// <summary>The balloon of machine <paramref name="vmId"/>, a guest of <paramref name="memSizeMib"/> MiB, reached through <paramref name="qmp"/>.</summary>
    public QemuBalloon(QmpClient qmp, string vmId, int memSizeMib)
    {
        ArgumentNullException.ThrowIfNull(qmp);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(memSizeMib);
        _qmp = qmp;
        _vmId = vmId;
        _memSizeMib = memSizeMib;
    }

    private long GuestBytes => (long)_memSizeMib << 20;

    /// <summary>Asks the guest to give <paramref name="amountMib"/> MiB to the balloon.</summary>
    public Task SetTargetAsync(int amountMib, CancellationToken cancellationToken)
    {
        if (amountMib < 0 || amountMib >= _memSizeMib)
        {
            throw new ArgumentOutOfRangeException(nameof(amountMib), amountMib,
                $"vm \"{_vmId}\": the balloon target must be at least 0 and below the guest's {_memSizeMib} MiB");
        }

        long remaining = (long)(_memSizeMib - amountMib) << 20;
        return _qmp.ExecuteAsync("balloon", w => w.WriteNumber("value", remaining), cancellationToken);
    }

    /// <summary>Pages the guest has given to the balloon so far.</summary>
    public async Task<long> GetActualPagesAsync(CancellationToken cancellationToken)
    {
        JsonElement answer = await _qmp.ExecuteAsync("query-balloon", cancellationToken).ConfigureAwait(false);
        return ParseActualPages(answer, _vmId, _memSizeMib);
    }

    /// <summary>Sets how often the guest reports statistics; 0 stops the reports.</summary>
    public Task SetStatisticsIntervalAsync(int seconds, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(seconds);
        return _qmp.ExecuteAsync("qom-set", w =>
        {
            w.WriteString("path", DevicePath);
            w.WriteString("property", "guest-stats-polling-interval");
            w.WriteNumber("value", seconds);
        }, cancellationToken);
    }

    /// <summary>The guest's last statistics report; <see cref="GuestMemoryStatistics.Empty"/> before its first.</summary>
    public async Task<GuestMemoryStatistics> GetGuestStatisticsAsync(CancellationToken cancellationToken)
    {
        JsonElement answer = await _qmp.ExecuteAsync("qom-get", w =>
        {
            w.WriteString("path", DevicePath);
            w.WriteString("property", "guest-stats");
        }, cancellationToken).ConfigureAwait(false);
        GuestMemoryStatistics statistics = ParseGuestStatistics(answer, _vmId);
        statistics.Check(_vmId, GuestBytes);
        return statistics;
    }

    /// <summary>Turns <c>query-balloon</c>'s answer (the guest's remaining RAM in bytes) into pages held by the balloon.</summary>
    /// <exception cref="InvalidDataException">The answer is malformed or outside 0 &lt; actual &lt;= the guest's RAM.</exception>
    public static long ParseActualPages(JsonElement answer, string vmId, int memSizeMib)
    {
        long guestBytes = (long)memSizeMib << 20;
        if (answer.ValueKind != JsonValueKind.Object || !answer.TryGetProperty("actual", out JsonElement actual)
            || actual.ValueKind != JsonValueKind.Number || !actual.TryGetInt64(out long remaining))
        {
            throw new InvalidDataException($"vm \"{vmId}\": QMP query-balloon answered without an integer \"actual\": {answer.GetRawText()}");
        }

        if (remaining <= 0 || remaining > guestBytes)
        {
            throw new InvalidDataException(
                $"vm \"{vmId}\": QMP query-balloon reported {remaining} bytes left to a guest of {guestBytes} bytes");
        }

        return (guestBytes - remaining) / BalloonStatistics.PageSize;
    }

    /// <summary>Reads <c>qom-get guest-stats</c>: {"stats": {"stat-...": n}, "last-update": seconds}.</summary>
    /// <exception cref="InvalidDataException">The answer is malformed or a value is not a 64-bit count.</exception>
    public static GuestMemoryStatistics ParseGuestStatistics(JsonElement answer, string vmId)
    {
        if (answer.ValueKind != JsonValueKind.Object
            || !answer.TryGetProperty("stats", out JsonElement stats) || stats.ValueKind != JsonValueKind.Object
            || !answer.TryGetProperty("last-update", out JsonElement lastUpdate) || !lastUpdate.TryGetInt64(out long updated)
            || updated < 0)
        {
            throw new InvalidDataException($"vm \"{vmId}\": QMP qom-get guest-stats answered an unexpected shape: {answer.GetRawText()}");
        }

        if (updated == 0)
        {
            return GuestMemoryStatistics.Empty;
        }

        long? Stat(string name)
        {
            if (!stats.TryGetProperty(name, out JsonElement value))
            {
                return null;
            }

            if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long signed))
            {
                return signed == -1 ? null : signed;
            }

            if (value.ValueKind == JsonValueKind.Number && value.TryGetUInt64(out ulong unsigned) && unsigned == NotReported)
            {
                return null;
            }

            throw new InvalidDataException($"vm \"{vmId}\": guest statistic {name} is not a 64-bit count: {value.GetRawText()}");
        }

        return new GuestMemoryStatistics(
            SwapIn: Stat("stat-swap-in"),
            SwapOut: Stat("stat-swap-out"),
            MajorFaults: Stat("stat-major-faults"),
            MinorFaults: Stat("stat-minor-faults"),
            FreeMemory: Stat("stat-free-memory"),
            TotalMemory: Stat("stat-total-memory"),
            AvailableMemory: Stat("stat-available-memory"),
            DiskCaches: Stat("stat-disk-caches"),
            HugetlbAllocations: Stat("stat-htlb-pgalloc"),
            HugetlbFailures: Stat("stat-htlb-pgfail"));
    }
}
