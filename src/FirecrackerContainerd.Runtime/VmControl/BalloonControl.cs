using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Vmm.Machine;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>
/// The memory balloon calls of the control API (GetBalloonConfig, UpdateBalloon, GetBalloonStats,
/// UpdateBalloonStats) and the check of CreateVM's BalloonDevice, with Firecracker's rules whatever VMM runs the VM.
/// </summary>
/// <remarks>
/// The balloon exists only when CreateVM asked for one. Requests are checked here, before the VMM sees them, and
/// refusals carry the status a Firecracker-backed shim gives: InvalidArgument for a bad number, FailedPrecondition
/// for a balloon (or statistics) the VM does not have.
/// </remarks>
/// <param name="vmId">The VM the shim serves, named in every error.</param>
public sealed class BalloonControl(string vmId)
{
    /// <summary>
    /// The balloon CreateVM asks for, checked against the VM's <paramref name="memSizeMib"/>; null when it asks for
    /// none. Problems are added to <paramref name="problems"/>.
    /// </summary>
    public static BalloonDevice? FromCreateRequest(FirecrackerBalloonDevice? requested, int memSizeMib, List<string> problems)
    {
        ArgumentNullException.ThrowIfNull(problems);
        if (requested is null)
        {
            return null;
        }

        if (requested.AmountMib < 0 || requested.AmountMib >= memSizeMib)
        {
            problems.Add($"BalloonDevice.AmountMib {requested.AmountMib} is not at least 0 and below the VM's {memSizeMib} MiB");
        }

        if (requested.StatsPollingIntervals is < 0 or > BalloonDevice.MaxStatsPollingIntervalSeconds)
        {
            problems.Add($"BalloonDevice.StatsPollingIntervals {requested.StatsPollingIntervals} is not between 0 and {BalloonDevice.MaxStatsPollingIntervalSeconds} s");
        }

        return new BalloonDevice(
            (int)Math.Clamp(requested.AmountMib, 0, memSizeMib),
            requested.DeflateOnOom,
            (int)Math.Clamp(requested.StatsPollingIntervals, 0, BalloonDevice.MaxStatsPollingIntervalSeconds));
    }

    /// <summary>GetBalloonConfig: the current target, DeflateOnOom and statistics interval.</summary>
    public async Task<GetBalloonConfigResponse> GetConfigAsync(IVirtualMachine machine, CancellationToken cancellationToken)
    {
        _ = RequireBalloon(machine);
        BalloonDevice balloon = await FromVmm(() => machine.GetBalloonConfigAsync(cancellationToken)).ConfigureAwait(false);
        return new GetBalloonConfigResponse
        {
            BalloonConfig = new FirecrackerBalloonDevice
            {
                AmountMib = balloon.AmountMib,
                DeflateOnOom = balloon.DeflateOnOom,
                StatsPollingIntervals = balloon.StatsPollingIntervalSeconds,
            },
        };
    }

    /// <summary>UpdateBalloon: a new target, at least 0 and below the VM's memory.</summary>
    public async Task<Empty> UpdateAsync(IVirtualMachine machine, UpdateBalloonRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        _ = RequireBalloon(machine);
        int memSizeMib = machine.Spec.Machine.MemSizeMib;
        if (request.AmountMib < 0 || request.AmountMib >= memSizeMib)
        {
            throw new TtrpcException(StatusCode.InvalidArgument,
                $"update balloon of vm \"{vmId}\": AmountMib {request.AmountMib} is not at least 0 and below the VM's {memSizeMib} MiB");
        }

        await FromVmm(async () =>
        {
            await machine.UpdateBalloonAsync((int)request.AmountMib, cancellationToken).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
        return new Empty();
    }

    /// <summary>GetBalloonStats: target and actual size, and the guest's statistics; refused when statistics are off.</summary>
    public async Task<GetBalloonStatsResponse> GetStatsAsync(IVirtualMachine machine, CancellationToken cancellationToken)
    {
        if (RequireBalloon(machine).StatsPollingIntervalSeconds == 0)
        {
            throw new TtrpcException(StatusCode.FailedPrecondition,
                $"vm \"{vmId}\": balloon statistics are off (StatsPollingIntervals was 0 at CreateVM)");
        }

        BalloonStatistics stats = await FromVmm(() => machine.GetBalloonStatisticsAsync(cancellationToken)).ConfigureAwait(false);
        return ToResponse(stats);
    }

    /// <summary>UpdateBalloonStats: a new statistics interval; turning statistics on or off after boot is refused.</summary>
    public async Task<Empty> UpdateStatsAsync(IVirtualMachine machine, UpdateBalloonStatsRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        BalloonDevice balloon = RequireBalloon(machine);
        if (request.StatsPollingIntervals is < 0 or > BalloonDevice.MaxStatsPollingIntervalSeconds)
        {
            throw new TtrpcException(StatusCode.InvalidArgument,
                $"update balloon statistics of vm \"{vmId}\": StatsPollingIntervals {request.StatsPollingIntervals} is not between 0 and {BalloonDevice.MaxStatsPollingIntervalSeconds} s");
        }

        bool on = balloon.StatsPollingIntervalSeconds != 0;
        if (on != (request.StatsPollingIntervals != 0))
        {
            throw new TtrpcException(StatusCode.FailedPrecondition,
                $"vm \"{vmId}\": balloon statistics cannot be turned {(on ? "off" : "on")} after CreateVM");
        }

        await FromVmm(async () =>
        {
            await machine.UpdateBalloonStatisticsAsync((int)request.StatsPollingIntervals, cancellationToken).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
        return new Empty();
    }

    /// <summary>The response of GetBalloonStats; a statistic the guest did not report reads 0.</summary>
    public static GetBalloonStatsResponse ToResponse(BalloonStatistics stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        GuestMemoryStatistics guest = stats.Guest ?? GuestMemoryStatistics.Empty;
        return new GetBalloonStatsResponse
        {
            TargetPages = stats.TargetPages,
            TargetMib = stats.TargetMib,
            ActualPages = stats.ActualPages,
            ActualMib = stats.ActualMib,
            SwapIn = guest.SwapIn ?? 0,
            SwapOut = guest.SwapOut ?? 0,
            MajorFaults = guest.MajorFaults ?? 0,
            MinorFaults = guest.MinorFaults ?? 0,
            FreeMemory = guest.FreeMemory ?? 0,
            TotalMemory = guest.TotalMemory ?? 0,
            AvailableMemory = guest.AvailableMemory ?? 0,
            DiskCaches = guest.DiskCaches ?? 0,
            HugetlbAllocations = guest.HugetlbAllocations ?? 0,
            HugetlbFailures = guest.HugetlbFailures ?? 0,
        };
    }

    private BalloonDevice RequireBalloon(IVirtualMachine machine)
    {
        ArgumentNullException.ThrowIfNull(machine);
        return machine.Spec.Balloon
            ?? throw new TtrpcException(StatusCode.FailedPrecondition, $"vm \"{vmId}\" has no balloon device: CreateVM did not ask for one");
    }

    // The drivers' errors name the VM already. Numbers the VMM answers that make no sense are its fault, not the caller's.
    private static async Task<T> FromVmm<T>(Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (InvalidDataException e)
        {
            throw new TtrpcException(StatusCode.Internal, e.Message, e);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, e.Message, e);
        }
        catch (InvalidOperationException e)
        {
            throw new TtrpcException(StatusCode.FailedPrecondition, e.Message, e);
        }
    }
}
