using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Tests.Fakes;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc;

namespace FirecrackerContainerd.Runtime.Tests.Vm;

/// <summary>The life of a shim's one VM over a fake machine: who boots it, what stopping it does, and when the shim ends.</summary>
public sealed class ShimVmTests : IAsyncDisposable
{
    private readonly FakeVmShim _shim = new();

    public ValueTask DisposeAsync() => _shim.DisposeAsync();

    [Fact]
    public async Task CreateVM_boots_the_VM_once_and_a_second_CreateVM_is_AlreadyExists()
    {
        MicroVm created = await _shim.Vm.CreateAsync("vm1", _shim.Config, VmDevices.None, keepAlive: true, CancellationToken.None);

        var e = await Assert.ThrowsAsync<TtrpcException>(() => _shim.Vm.CreateAsync("vm1", _shim.Config, VmDevices.None, keepAlive: true, CancellationToken.None));

        Assert.Equal(StatusCode.AlreadyExists, e.StatusCode);
        Assert.Equal(["vm1"], _shim.Booted);
        Assert.Same(created, _shim.Vm.Current);
    }

    [Fact]
    public async Task CreateVM_after_a_tasks_Create_booted_the_VM_is_AlreadyExists_and_a_task_joins_a_VM_made_by_CreateVM()
    {
        await _shim.RunAsync("c1");
        var e = await Assert.ThrowsAsync<TtrpcException>(() => _shim.Vm.CreateAsync("vm1", _shim.Config, VmDevices.None, keepAlive: true, CancellationToken.None));
        Assert.Equal(StatusCode.AlreadyExists, e.StatusCode);

        await using var other = new FakeVmShim();
        await other.Vm.CreateAsync("vm1", other.Config, VmDevices.None, keepAlive: true, CancellationToken.None);
        await other.RunAsync("c1");
        Assert.Equal(["vm1"], other.Booted);
    }

    [Fact]
    public async Task A_VM_kept_alive_by_CreateVM_outlives_its_last_task_until_StopVM_which_ends_the_shim()
    {
        await _shim.Vm.CreateAsync("vm1", _shim.Config, VmDevices.None, keepAlive: true, CancellationToken.None);
        await _shim.RunAsync("c1");
        await _shim.Service.KillAsync(new KillRequest { Id = "c1", Signal = 9 }, FakeVmShim.Call());
        await _shim.Service.DeleteAsync(new DeleteRequest { Id = "c1" }, FakeVmShim.Call());
        await _shim.Service.ShutdownAsync(new ShutdownRequest { Id = "c1" }, FakeVmShim.Call());
        Assert.False(_shim.Lifetime.ExitRequested.IsCompleted);
        Assert.False(_shim.Machine.Exited.IsCompleted);

        await _shim.Vm.StopAsync(TimeSpan.FromSeconds(5), CancellationToken.None);

        Assert.Equal("vm vm1 created by CreateVM has exited", await _shim.Lifetime.ExitRequested.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.False(Directory.Exists(_shim.VmDirectory()));
    }

    [Fact]
    public async Task StopVM_under_running_tasks_gives_each_process_an_exit_137_before_it_returns()
    {
        await _shim.Vm.CreateAsync("vm1", _shim.Config, VmDevices.None, keepAlive: true, CancellationToken.None);
        await _shim.RunAsync("c1");
        await _shim.RunAsync("c2");

        await _shim.Vm.StopAsync(TimeSpan.FromSeconds(5), CancellationToken.None);

        Assert.Equal(["c1/137", "c2/137"], _shim.Events.Of<TaskExit>("/tasks/exit").Select(e => $"{e.ContainerId}/{e.ExitStatus}").Order());
    }

    [Fact]
    public async Task StopVM_stops_the_VMM_at_once_instead_of_waiting_out_its_timeout_for_a_power_off()
    {
        await _shim.Vm.CreateAsync("vm1", _shim.Config, VmDevices.None, keepAlive: true, CancellationToken.None);
        await _shim.RunAsync("c1");
        FakeMachine machine = _shim.Machine;

        await _shim.Vm.StopAsync(TimeSpan.FromSeconds(5), CancellationToken.None);

        Assert.Equal([TimeSpan.Zero], machine.Stops);
    }

    [Fact]
    public async Task A_stopped_VM_made_by_CreateVM_ends_the_shim_without_waiting_for_deletes_of_tasks_nobody_waits_for()
    {
        // A grace longer than any test: were the shim waiting for c1's delete, it would not end.
        await using var shim = new FakeVmShim(deleteGrace: TimeSpan.FromDays(1));
        await shim.Vm.CreateAsync("vm1", shim.Config, VmDevices.None, keepAlive: true, CancellationToken.None);
        await shim.RunAsync("c1"); // as ctr run -d: nobody waits for it, containerd deletes it once the shim is gone

        await shim.Vm.StopAsync(TimeSpan.FromSeconds(5), CancellationToken.None);

        Assert.Equal("vm vm1 created by CreateVM has exited", await shim.Lifetime.ExitRequested.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.NotNull(shim.Tasks.TryFind("c1"));
    }

    [Fact]
    public async Task A_stopped_VM_made_by_CreateVM_ends_the_shim_only_once_the_tasks_a_client_waits_for_are_deleted()
    {
        await using var shim = new FakeVmShim(deleteGrace: TimeSpan.FromDays(1));
        await shim.Vm.CreateAsync("vm1", shim.Config, VmDevices.None, keepAlive: true, CancellationToken.None);
        await shim.RunAsync("c1");
        await shim.RunAsync("c2");
        Task<WaitResponse> waiting = shim.Service.WaitAsync(new WaitRequest { Id = "c1" }, FakeVmShim.Call()); // as ctr run --rm

        await shim.Vm.StopAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.Equal(137u, (await waiting).ExitStatus);
        Assert.False(shim.Lifetime.ExitRequested.IsCompleted); // c1's client still has to delete it
        await shim.Service.DeleteAsync(new DeleteRequest { Id = "c1" }, FakeVmShim.Call());

        Assert.Equal("vm vm1 created by CreateVM has exited", await shim.Lifetime.ExitRequested.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.NotNull(shim.Tasks.TryFind("c2"));
    }

    [Fact]
    public async Task Pause_and_resume_of_a_VM_that_was_never_booted_is_NotFound()
    {
        var e = await Assert.ThrowsAsync<TtrpcException>(() => _shim.Vm.PauseAsync(CancellationToken.None));

        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.False(await _shim.Vm.IsPausedAsync(CancellationToken.None));
    }
}
