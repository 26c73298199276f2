using System.Collections.Immutable;
using System.Text.Json;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Runtime.VmControl;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Runtime.Tests.VmControl;

/// <summary>The balloon calls of the control API: what is refused, with which status, before the VMM hears of it.</summary>
public sealed class BalloonControlTests
{
    private const string VmId = "vm1";
    private const int GuestMib = 256;
    private readonly BalloonControl _control = new(VmId);

    [Fact]
    public void CreateVM_without_a_BalloonDevice_asks_for_no_balloon()
    {
        var problems = new List<string>();
        Assert.Null(BalloonControl.FromCreateRequest(null, GuestMib, problems));
        Assert.Empty(problems);
    }

    [Fact]
    public void CreateVM_with_a_BalloonDevice_gets_that_balloon()
    {
        var problems = new List<string>();
        BalloonDevice? balloon = BalloonControl.FromCreateRequest(
            new FirecrackerBalloonDevice { AmountMib = 16, DeflateOnOom = true, StatsPollingIntervals = 3 }, GuestMib, problems);
        Assert.Empty(problems);
        Assert.Equal(new BalloonDevice(16, DeflateOnOom: true, StatsPollingIntervalSeconds: 3), balloon);
    }

    [Theory]
    [InlineData(-1, 0, "AmountMib -1")]
    [InlineData(GuestMib, 0, "AmountMib 256")]
    [InlineData(long.MaxValue, 0, "AmountMib 9223372036854775807")]
    [InlineData(0, -1, "StatsPollingIntervals -1")]
    [InlineData(0, 65536, "StatsPollingIntervals 65536")]
    public void CreateVM_refuses_a_balloon_outside_the_guest_or_a_bad_interval(long amountMib, long interval, string expected)
    {
        var problems = new List<string>();
        BalloonControl.FromCreateRequest(
            new FirecrackerBalloonDevice { AmountMib = amountMib, StatsPollingIntervals = interval }, GuestMib, problems);
        Assert.Contains(expected, Assert.Single(problems), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_call_on_a_VM_without_a_balloon_fails_with_FailedPrecondition_naming_the_VM()
    {
        var machine = new RecordingMachine(balloon: null);
        Func<Task>[] calls =
        [
            () => _control.GetConfigAsync(machine, default),
            () => _control.UpdateAsync(machine, new UpdateBalloonRequest { VMID = VmId, AmountMib = 1 }, default),
            () => _control.GetStatsAsync(machine, default),
            () => _control.UpdateStatsAsync(machine, new UpdateBalloonStatsRequest { VMID = VmId, StatsPollingIntervals = 1 }, default),
        ];
        foreach (Func<Task> call in calls)
        {
            TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(call);
            Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
            Assert.Equal("vm \"vm1\" has no balloon device: CreateVM did not ask for one", e.Message);
        }

        Assert.Empty(machine.Calls);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(GuestMib)]
    [InlineData(long.MaxValue)]
    [InlineData(long.MinValue)]
    public async Task UpdateBalloon_refuses_a_target_outside_the_guest_with_InvalidArgument(long amountMib)
    {
        var machine = new RecordingMachine(new BalloonDevice(0, false, 1));
        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(
            () => _control.UpdateAsync(machine, new UpdateBalloonRequest { VMID = VmId, AmountMib = amountMib }, default));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Empty(machine.Calls);
    }

    [Fact]
    public async Task UpdateBalloon_passes_a_target_below_the_guests_memory_and_GetBalloonConfig_shows_it()
    {
        var machine = new RecordingMachine(new BalloonDevice(0, true, 1));
        await _control.UpdateAsync(machine, new UpdateBalloonRequest { VMID = VmId, AmountMib = GuestMib - 1 }, default);
        GetBalloonConfigResponse config = await _control.GetConfigAsync(machine, default);

        Assert.Equal(["balloon 255"], machine.Calls);
        Assert.Equal(new FirecrackerBalloonDevice { AmountMib = GuestMib - 1, DeflateOnOom = true, StatsPollingIntervals = 1 }, config.BalloonConfig);
    }

    [Fact]
    public async Task Statistics_that_were_off_at_creation_stay_off()
    {
        var machine = new RecordingMachine(new BalloonDevice(0, false, 0));
        TtrpcException get = await Assert.ThrowsAsync<TtrpcException>(() => _control.GetStatsAsync(machine, default));
        TtrpcException on = await Assert.ThrowsAsync<TtrpcException>(
            () => _control.UpdateStatsAsync(machine, new UpdateBalloonStatsRequest { VMID = VmId, StatsPollingIntervals = 1 }, default));

        Assert.Equal((StatusCode.FailedPrecondition, StatusCode.FailedPrecondition), (get.StatusCode, on.StatusCode));
        Assert.Contains("statistics are off", get.Message, StringComparison.Ordinal);
        Assert.Contains("cannot be turned on", on.Message, StringComparison.Ordinal);
        Assert.Empty(machine.Calls);
    }

    [Fact]
    public async Task Statistics_that_were_on_cannot_be_turned_off_but_their_interval_changes()
    {
        var machine = new RecordingMachine(new BalloonDevice(0, false, 1));
        TtrpcException off = await Assert.ThrowsAsync<TtrpcException>(
            () => _control.UpdateStatsAsync(machine, new UpdateBalloonStatsRequest { VMID = VmId, StatsPollingIntervals = 0 }, default));
        TtrpcException negative = await Assert.ThrowsAsync<TtrpcException>(
            () => _control.UpdateStatsAsync(machine, new UpdateBalloonStatsRequest { VMID = VmId, StatsPollingIntervals = -1 }, default));
        await _control.UpdateStatsAsync(machine, new UpdateBalloonStatsRequest { VMID = VmId, StatsPollingIntervals = 10 }, default);

        Assert.Equal((StatusCode.FailedPrecondition, StatusCode.InvalidArgument), (off.StatusCode, negative.StatusCode));
        Assert.Equal(["stats 10"], machine.Calls);
    }

    [Fact]
    public async Task GetBalloonStats_reports_pages_MiB_and_the_guests_figures_with_unreported_ones_as_zero()
    {
        var guest = GuestMemoryStatistics.Empty with { TotalMemory = 200 << 20, FreeMemory = 100 << 20, MinorFaults = 7 };
        var machine = new RecordingMachine(new BalloonDevice(64, false, 1))
        {
            Statistics = BalloonStatistics.Create(VmId, GuestMib, 64 * 256, 32 * 256 + 5, guest),
        };

        GetBalloonStatsResponse stats = await _control.GetStatsAsync(machine, default);

        Assert.Equal((64L, 16384L, 32L, 8197L), (stats.TargetMib, stats.TargetPages, stats.ActualMib, stats.ActualPages));
        Assert.Equal((200L << 20, 100L << 20, 7L, 0L, 0L), (stats.TotalMemory, stats.FreeMemory, stats.MinorFaults, stats.SwapIn, stats.HugetlbFailures));
    }

    [Fact]
    public async Task Nonsense_from_the_VMM_is_an_internal_error_not_the_callers()
    {
        var machine = new RecordingMachine(new BalloonDevice(64, false, 1))
        {
            StatisticsFailure = new InvalidDataException("vm \"vm1\": the VMM reported balloon actual pages -1, outside 0..65536"),
        };

        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(() => _control.GetStatsAsync(machine, default));
        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.Contains("actual pages -1", e.Message, StringComparison.Ordinal);
    }

    /// <summary>A machine that only keeps a balloon and records the balloon calls that reach it.</summary>
    private sealed class RecordingMachine(BalloonDevice? balloon) : IVirtualMachine
    {
        public List<string> Calls { get; } = [];

        public BalloonStatistics? Statistics { get; init; }

        public Exception? StatisticsFailure { get; init; }

        public string VmId => BalloonControlTests.VmId;

        public MachineSpec Spec { get; private set; } = new(
            BalloonControlTests.VmId, new BootSource("/vmlinux"), new MachineConfig(1, GuestMib), ImmutableArray<Drive>.Empty, Balloon: balloon);

        public string? VsockHostPath => null;

        public string ControlSocketPath => "/nonexistent/control.sock";

        public Task<VmExit> Exited => new TaskCompletionSource<VmExit>().Task;

        public IReadOnlyList<string> RecentOutput() => [];

        public Task UpdateBalloonAsync(int amountMib, CancellationToken cancellationToken)
        {
            Calls.Add($"balloon {amountMib}");
            Spec = Spec with { Balloon = Spec.Balloon! with { AmountMib = amountMib } };
            return Task.CompletedTask;
        }

        public Task<BalloonDevice> GetBalloonConfigAsync(CancellationToken cancellationToken) => Task.FromResult(Spec.Balloon!);

        public Task<BalloonStatistics> GetBalloonStatisticsAsync(CancellationToken cancellationToken) =>
            StatisticsFailure is { } failure ? Task.FromException<BalloonStatistics>(failure) : Task.FromResult(Statistics!);

        public Task UpdateBalloonStatisticsAsync(int pollingIntervalSeconds, CancellationToken cancellationToken)
        {
            Calls.Add($"stats {pollingIntervalSeconds}");
            return Task.CompletedTask;
        }

        public Task StartAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task RestoreAsync(SnapshotLoad snapshot, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<MachineState> GetStateAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task PauseAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task ResumeAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task PatchDriveAsync(string driveId, string hostPath, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task SetMetadataAsync(JsonElement metadata, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task PatchMetadataAsync(JsonElement patch, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task FlushMetricsAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task CreateSnapshotAsync(SnapshotCreate snapshot, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<VmExit> StopAsync(TimeSpan gracePeriod, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
