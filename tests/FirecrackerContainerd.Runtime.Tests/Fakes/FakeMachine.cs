using System.Collections.Concurrent;
using System.Text.Json;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Runtime.Tests.Fakes;

/// <summary>A machine with no VMM behind it: it records drive patches and stops, and its exit is the test's to cause.</summary>
internal sealed class FakeMachine(string vmId) : IVirtualMachine
{
    private readonly TaskCompletionSource<VmExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private MachineState _state = MachineState.Running;

    public string VmId => vmId;

    public MachineSpec Spec { get; } = new(vmId, new BootSource("/vmlinuz", "/initrd", ""), new MachineConfig(1, 128), []);

    public string? VsockHostPath => null;

    public string ControlSocketPath => "/nonexistent/control.sock";

    public Task<VmExit> Exited => _exited.Task;

    /// <summary>Drive patches as "driveId=hostPath", in order.</summary>
    public ConcurrentQueue<string> Patches { get; } = new();

    /// <summary>The grace periods StopAsync was given, in order.</summary>
    public ConcurrentQueue<TimeSpan> Stops { get; } = new();

    /// <summary>The VMM dies, as if killed.</summary>
    public void Die() => _exited.TrySetResult(new VmExit(vmId, 4242, 137, Killed: false, DateTimeOffset.UtcNow));

    public IReadOnlyList<string> RecentOutput() => [];

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task<MachineState> GetStateAsync(CancellationToken cancellationToken) => Task.FromResult(_state);

    public Task PauseAsync(CancellationToken cancellationToken)
    {
        _state = MachineState.Paused;
        return Task.CompletedTask;
    }

    public Task ResumeAsync(CancellationToken cancellationToken)
    {
        _state = MachineState.Running;
        return Task.CompletedTask;
    }

    public Task PatchDriveAsync(string driveId, string hostPath, CancellationToken cancellationToken)
    {
        Patches.Enqueue($"{driveId}={hostPath}");
        return Task.CompletedTask;
    }

    public async Task<VmExit> StopAsync(TimeSpan gracePeriod, CancellationToken cancellationToken)
    {
        Stops.Enqueue(gracePeriod);
        _exited.TrySetResult(new VmExit(vmId, 4242, 0, Killed: false, DateTimeOffset.UtcNow));
        return await _exited.Task.ConfigureAwait(false);
    }

    public ValueTask DisposeAsync()
    {
        _exited.TrySetResult(new VmExit(vmId, 4242, 137, Killed: true, DateTimeOffset.UtcNow));
        return ValueTask.CompletedTask;
    }

    public Task RestoreAsync(SnapshotLoad snapshot, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task UpdateBalloonAsync(int amountMib, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<BalloonDevice> GetBalloonConfigAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task<BalloonStatistics> GetBalloonStatisticsAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task UpdateBalloonStatisticsAsync(int pollingIntervalSeconds, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task SetMetadataAsync(JsonElement metadata, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task PatchMetadataAsync(JsonElement patch, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task FlushMetricsAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task CreateSnapshotAsync(SnapshotCreate snapshot, CancellationToken cancellationToken) => throw new NotSupportedException();
}
