using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Vmm.Qemu;

/// <summary>The balloon of a QEMU machine, with Firecracker's rules on top of QEMU's commands.</summary>
/// <remarks>
/// QEMU cannot say what target it was given, so the machine keeps the balloon's settings in <see cref="Spec"/>,
/// changed only after QEMU accepted them. Statistics follow Firecracker: on or off is decided at boot.
/// </remarks>
public sealed partial class QemuMachine
{
    /// <inheritdoc/>
    public async Task UpdateBalloonAsync(int amountMib, CancellationToken cancellationToken)
    {
        await ChangeBalloonAsync(async balloon =>
        {
            await Balloon().SetTargetAsync(amountMib, cancellationToken).ConfigureAwait(false);
            return balloon with { AmountMib = amountMib };
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public Task<BalloonDevice> GetBalloonConfigAsync(CancellationToken cancellationToken) => Task.FromResult(RequireBalloon());

    /// <inheritdoc/>
    public async Task<BalloonStatistics> GetBalloonStatisticsAsync(CancellationToken cancellationToken)
    {
        BalloonDevice balloon = RequireBalloon();
        if (balloon.StatsPollingIntervalSeconds == 0)
        {
            throw new InvalidOperationException($"vm \"{VmId}\": balloon statistics are off (their interval was 0 at boot)");
        }

        QemuBalloon device = Balloon();
        long actualPages = await device.GetActualPagesAsync(cancellationToken).ConfigureAwait(false);
        GuestMemoryStatistics guest = await device.GetGuestStatisticsAsync(cancellationToken).ConfigureAwait(false);
        return BalloonStatistics.Create(
            VmId, Spec.Machine.MemSizeMib, (long)balloon.AmountMib * BalloonStatistics.PagesPerMib, actualPages, guest.IsEmpty ? null : guest);
    }

    /// <inheritdoc/>
    public async Task UpdateBalloonStatisticsAsync(int pollingIntervalSeconds, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pollingIntervalSeconds);
        await ChangeBalloonAsync(async balloon =>
        {
            if ((balloon.StatsPollingIntervalSeconds == 0) != (pollingIntervalSeconds == 0))
            {
                throw new InvalidOperationException(
                    $"vm \"{VmId}\": balloon statistics cannot be turned {(pollingIntervalSeconds == 0 ? "off" : "on")} after boot");
            }

            await Balloon().SetStatisticsIntervalAsync(pollingIntervalSeconds, cancellationToken).ConfigureAwait(false);
            return balloon with { StatsPollingIntervalSeconds = pollingIntervalSeconds };
        }, cancellationToken).ConfigureAwait(false);
    }

    // Sends the boot-time settings QEMU's command line cannot carry: a target above zero and the statistics interval.
    private async Task ConfigureBalloonAsync(CancellationToken cancellationToken)
    {
        if (Spec.Balloon is not { } balloon)
        {
            return;
        }

        if (balloon.AmountMib > 0)
        {
            await Balloon().SetTargetAsync(balloon.AmountMib, cancellationToken).ConfigureAwait(false);
        }

        if (balloon.StatsPollingIntervalSeconds > 0)
        {
            await Balloon().SetStatisticsIntervalAsync(balloon.StatsPollingIntervalSeconds, cancellationToken).ConfigureAwait(false);
        }
    }

    // Spec changes (drive patches, balloon changes) are serialised by one lock so that none is lost.
    private async Task ChangeBalloonAsync(Func<BalloonDevice, Task<BalloonDevice>> change, CancellationToken cancellationToken)
    {
        await _patchLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            BalloonDevice changed = await change(RequireBalloon()).ConfigureAwait(false);
            Spec = Spec with { Balloon = changed };
        }
        finally
        {
            _patchLock.Release();
        }
    }

    private BalloonDevice RequireBalloon() =>
        Spec.Balloon ?? throw new InvalidOperationException($"vm \"{VmId}\" has no balloon device");

    private QemuBalloon Balloon() => new(Qmp, VmId, Spec.Machine.MemSizeMib);
}
