using FirecrackerContainerd.Protos.Containerd.TaskTypes;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Rootfs;
using FirecrackerContainerd.Runtime.Tests.Fakes;
using FirecrackerContainerd.Ttrpc;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Runtime.Tests.Tasks;

/// <summary>The Task service of a shim over a fake VM: what each call records, undoes, answers and publishes.</summary>
public sealed class VmTaskServiceTests : IAsyncDisposable
{
    private readonly FakeVmShim _shim = new();

    public ValueTask DisposeAsync() => _shim.DisposeAsync();

    [Fact]
    public async Task Create_boots_the_VM_attaches_the_rootfs_records_the_task_and_publishes_its_create_event()
    {
        CreateTaskResponse created = await _shim.Service.CreateAsync(_shim.CreateRequest("c1"), FakeVmShim.Call());

        Assert.Equal(["vm1"], _shim.Booted);
        string image = Path.Combine(_shim.VmDirectory(), "rootfs0.img");
        Assert.Equal("/snapshots/c1", await File.ReadAllTextAsync(image));
        Assert.Equal([$"stub0={image}"], _shim.Machine.Patches);
        Assert.Equal(["MountDrive stub0 /container/c1/rootfs ext4", "Create c1"], _shim.Agent.Calls);
        TaskCreate published = Assert.Single(_shim.Events.Of<TaskCreate>("/tasks/create"));
        Assert.Equal(("c1", created.Pid), (published.ContainerId, published.Pid));
        StateResponse state = await _shim.Service.StateAsync(new StateRequest { Id = "c1" }, FakeVmShim.Call());
        Assert.Equal((Status.Created, created.Pid), (state.Status, state.Pid));
    }

    [Fact]
    public async Task A_Create_whose_agent_call_fails_unmounts_frees_the_slot_deletes_the_image_and_records_nothing()
    {
        await _shim.RunAsync("c1");
        _shim.Agent.CreateFailure = new TtrpcException(StatusCode.Internal, "crun failed");

        var e = await Assert.ThrowsAsync<TtrpcException>(() => _shim.Service.CreateAsync(_shim.CreateRequest("c2"), FakeVmShim.Call()));

        Assert.Equal("crun failed", e.Message);
        Assert.Equal(["MountDrive stub1 /container/c2/rootfs ext4", "Create c2", "UnmountDrive stub1"], _shim.Agent.Calls.Skip(3));
        Assert.False(File.Exists(Path.Combine(_shim.VmDirectory(), "rootfs1.img")));
        Assert.DoesNotContain(_shim.Events.Of<TaskCreate>("/tasks/create"), c => c.ContainerId == "c2");
        await ExpectNotFoundAsync(() => _shim.Service.StateAsync(new StateRequest { Id = "c2" }, FakeVmShim.Call()));

        // Slot 1 is free again: the next container takes it.
        _shim.Agent.CreateFailure = null;
        await _shim.Service.CreateAsync(_shim.CreateRequest("c3"), FakeVmShim.Call());
        Assert.EndsWith("MountDrive stub1 /container/c3/rootfs ext4", string.Join('|', _shim.Agent.Calls.SkipLast(1)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_Create_whose_rootfs_cannot_be_imaged_is_InvalidArgument_and_frees_the_slot_without_touching_the_guest()
    {
        await _shim.RunAsync("c1");
        _shim.ImageFailure = new InvalidRootfsException("mount 0: type \"tmpfs\" is not supported");

        var e = await Assert.ThrowsAsync<TtrpcException>(() => _shim.Service.CreateAsync(_shim.CreateRequest("c2"), FakeVmShim.Call()));

        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Equal("create c2: mount 0: type \"tmpfs\" is not supported", e.Message);
        Assert.DoesNotContain(_shim.Agent.Calls, c => c.Contains("c2", StringComparison.Ordinal) || c.Contains("stub1", StringComparison.Ordinal));
        _shim.ImageFailure = null;
        await _shim.Service.CreateAsync(_shim.CreateRequest("c3"), FakeVmShim.Call());
        Assert.Contains("MountDrive stub1 /container/c3/rootfs ext4", _shim.Agent.Calls);
    }

    [Fact]
    public async Task Delete_unmounts_the_rootfs_frees_its_slot_deletes_its_image_forgets_the_task_and_publishes_the_delete()
    {
        await _shim.RunAsync("c1");
        await _shim.RunAsync("c2");
        string image = Path.Combine(_shim.VmDirectory(), "rootfs0.img");

        DeleteResponse deleted = await _shim.Service.DeleteAsync(new DeleteRequest { Id = "c1" }, FakeVmShim.Call());

        Assert.Equal(0u, deleted.ExitStatus);
        Assert.Contains("Delete c1/", _shim.Agent.Calls);
        Assert.Contains("UnmountDrive stub0", _shim.Agent.Calls);
        Assert.False(File.Exists(image));
        Assert.Equal("c1", Assert.Single(_shim.Events.Of<TaskDelete>("/tasks/delete")).ContainerId);
        await ExpectNotFoundAsync(() => _shim.Service.StateAsync(new StateRequest { Id = "c1" }, FakeVmShim.Call()));

        // Both slots were taken; c1's is free again.
        await _shim.Service.CreateAsync(_shim.CreateRequest("c3"), FakeVmShim.Call());
        Assert.Contains("MountDrive stub0 /container/c3/rootfs ext4", _shim.Agent.Calls);
    }

    [Fact]
    public async Task State_answers_from_the_table_what_the_shim_saw_without_asking_the_guest()
    {
        CreateTaskResponse created = await _shim.RunAsync("c1");
        int callsBefore = _shim.Agent.Calls.Count;

        StateResponse running = await _shim.Service.StateAsync(new StateRequest { Id = "c1" }, FakeVmShim.Call());

        Assert.Equal(callsBefore, _shim.Agent.Calls.Count);
        Assert.Equal(("c1", Status.Running, _shim.CreateRequest("c1").Bundle), (running.Id, running.Status, running.Bundle));
        Assert.NotEqual(created.Pid, running.Pid); // Start's pid, as the agent reported it
        await _shim.Service.PauseAsync(new PauseRequest { Id = "c1" }, FakeVmShim.Call());
        Assert.Equal(Status.Paused, (await _shim.Service.StateAsync(new StateRequest { Id = "c1" }, FakeVmShim.Call())).Status);
        await _shim.Service.ResumeAsync(new ResumeRequest { Id = "c1" }, FakeVmShim.Call());

        // The whole VM paused through the control API: its running processes read as paused.
        await _shim.Vm.PauseAsync(CancellationToken.None);
        Assert.Equal(Status.Paused, (await _shim.Service.StateAsync(new StateRequest { Id = "c1" }, FakeVmShim.Call())).Status);
        await _shim.Vm.ResumeAsync(CancellationToken.None);
        Assert.Equal(Status.Running, (await _shim.Service.StateAsync(new StateRequest { Id = "c1" }, FakeVmShim.Call())).Status);
    }

    [Fact]
    public async Task A_guest_exit_reaches_Wait_State_and_containerd_and_an_event_about_an_unknown_process_is_dropped()
    {
        await _shim.RunAsync("c1");
        Task<WaitResponse> wait = _shim.Service.WaitAsync(new WaitRequest { Id = "c1" }, FakeVmShim.Call());

        _shim.Agent.Send("/tasks/exit", new TaskExit { ContainerId = "other", Id = "other", ExitStatus = 1 });
        _shim.Agent.Send("/tasks/exit", new TaskExit { ContainerId = "c1", Id = "c1", ExitStatus = 3, ExitedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) });

        Assert.Equal(3u, (await wait.WaitAsync(TimeSpan.FromSeconds(30))).ExitStatus);
        Assert.Equal((Status.Stopped, 3u), await StatusAsync("c1"));
        Assert.Equal(["c1"], _shim.Events.Of<TaskExit>("/tasks/exit").Select(e => e.ContainerId));
        await ExpectStatusAsync(StatusCode.NotFound, () => _shim.Service.KillAsync(new KillRequest { Id = "c1", Signal = 9 }, FakeVmShim.Call()));
    }

    [Fact]
    public async Task A_VMM_that_dies_gives_every_process_an_exit_137_published_and_Delete_answers_it_from_the_record()
    {
        await _shim.RunAsync("c1");
        await _shim.Service.ExecAsync(new ExecProcessRequest { Id = "c1", ExecId = "e1", Spec = new Any { Value = Google.Protobuf.ByteString.CopyFromUtf8("{}") } }, FakeVmShim.Call());
        await _shim.Service.StartAsync(new StartRequest { Id = "c1", ExecId = "e1" }, FakeVmShim.Call());
        Task<WaitResponse> init = _shim.Service.WaitAsync(new WaitRequest { Id = "c1" }, FakeVmShim.Call());
        Task<WaitResponse> exec = _shim.Service.WaitAsync(new WaitRequest { Id = "c1", ExecId = "e1" }, FakeVmShim.Call());

        _shim.Machine.Die();

        Assert.Equal(137u, (await init.WaitAsync(TimeSpan.FromSeconds(30))).ExitStatus);
        Assert.Equal(137u, (await exec.WaitAsync(TimeSpan.FromSeconds(30))).ExitStatus);
        Assert.True(await EventuallyAsync(() => _shim.Events.Of<TaskExit>("/tasks/exit").Count == 2));
        Assert.Equal(["c1/c1/137", "c1/e1/137"], _shim.Events.Of<TaskExit>("/tasks/exit").Select(e => $"{e.ContainerId}/{e.Id}/{e.ExitStatus}"));
        int callsBefore = _shim.Agent.Calls.Count;
        Assert.Equal(137u, (await _shim.Service.DeleteAsync(new DeleteRequest { Id = "c1", ExecId = "e1" }, FakeVmShim.Call())).ExitStatus);
        Assert.Equal(137u, (await _shim.Service.DeleteAsync(new DeleteRequest { Id = "c1" }, FakeVmShim.Call())).ExitStatus);
        Assert.Equal(callsBefore, _shim.Agent.Calls.Count); // the guest is gone: nothing was asked of it
        Assert.False(File.Exists(Path.Combine(_shim.VmDirectory(), "rootfs0.img")));
    }

    [Fact]
    public async Task Calls_about_an_unknown_task_or_exec_answer_NotFound_without_asking_the_guest()
    {
        await _shim.RunAsync("c1");
        int callsBefore = _shim.Agent.Calls.Count;
        var call = FakeVmShim.Call();

        await ExpectNotFoundAsync(() => _shim.Service.StateAsync(new StateRequest { Id = "nope" }, call));
        await ExpectNotFoundAsync(() => _shim.Service.StateAsync(new StateRequest { Id = "c1", ExecId = "nope" }, call));
        await ExpectNotFoundAsync(() => _shim.Service.StartAsync(new StartRequest { Id = "nope" }, call));
        await ExpectNotFoundAsync(() => _shim.Service.WaitAsync(new WaitRequest { Id = "nope" }, call));
        await ExpectNotFoundAsync(() => _shim.Service.KillAsync(new KillRequest { Id = "c1", ExecId = "nope" }, call));
        await ExpectNotFoundAsync(() => _shim.Service.DeleteAsync(new DeleteRequest { Id = "nope" }, call));
        await ExpectNotFoundAsync(() => _shim.Service.PidsAsync(new PidsRequest { Id = "nope" }, call));
        await ExpectNotFoundAsync(() => _shim.Service.PauseAsync(new PauseRequest { Id = "nope" }, call));
        await ExpectNotFoundAsync(() => _shim.Service.StatsAsync(new StatsRequest { Id = "nope" }, call));
        await ExpectNotFoundAsync(() => _shim.Service.ExecAsync(new ExecProcessRequest { Id = "nope", ExecId = "e1" }, call));
        Assert.Equal(callsBefore, _shim.Agent.Calls.Count);
        Assert.Equal(0u, (await _shim.Service.ConnectAsync(new ConnectRequest { Id = "nope" }, call)).TaskPid);
    }

    [Theory]
    [InlineData("../etc", "vm1", "invalid container id: identifier \"../etc\" must match")]
    [InlineData("c1", "a/b", "invalid vm id: identifier \"a/b\" must match")]
    public async Task Create_with_an_id_that_could_name_a_path_is_InvalidArgument_and_boots_nothing(string id, string? vmId, string message)
    {
        var request = _shim.CreateRequest("c1", vmId);
        request.Id = id;

        var e = await ExpectStatusAsync(StatusCode.InvalidArgument, () => _shim.Service.CreateAsync(request, FakeVmShim.Call()));

        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
        Assert.Empty(_shim.Booted);
    }

    [Fact]
    public async Task VmIdentity_of_tasks_without_an_annotation_is_FIRECRACKER_VM_ID_so_they_share_the_VM_it_names()
    {
        _shim.SetEnvironment("FIRECRACKER_VM_ID", "shared");

        await _shim.RunAsync("c1", vmId: null);
        await _shim.RunAsync("c2", vmId: null);

        Assert.Equal(["shared"], _shim.Booted);
        Assert.True(File.Exists(Path.Combine(_shim.VmDirectory("shared"), "rootfs1.img")));
    }

    [Fact]
    public async Task A_task_naming_another_VM_than_the_shims_is_refused()
    {
        await _shim.RunAsync("c1");

        var e = await ExpectStatusAsync(StatusCode.FailedPrecondition, () => _shim.Service.CreateAsync(_shim.CreateRequest("c2", "vm2"), FakeVmShim.Call()));

        Assert.Equal("this shim runs vm \"vm1\", not \"vm2\"", e.Message);
    }

    [Fact]
    public async Task Shutdown_is_ignored_while_tasks_remain_and_then_stops_the_VM_and_ends_the_shim()
    {
        await _shim.RunAsync("c1");

        await _shim.Service.ShutdownAsync(new ShutdownRequest { Id = "c1" }, FakeVmShim.Call());
        Assert.False(_shim.Lifetime.ExitRequested.IsCompleted);
        FakeMachine machine = _shim.Machine;

        await _shim.Service.KillAsync(new KillRequest { Id = "c1", Signal = 9 }, FakeVmShim.Call());
        await _shim.Service.DeleteAsync(new DeleteRequest { Id = "c1" }, FakeVmShim.Call());
        await _shim.Service.ShutdownAsync(new ShutdownRequest { Id = "c1" }, FakeVmShim.Call());

        Assert.Equal("Shutdown requested for c1", await _shim.Lifetime.ExitRequested);
        Assert.True(machine.Exited.IsCompleted);
        Assert.False(Directory.Exists(_shim.VmDirectory()));
    }

    [Fact]
    public async Task With_the_trace_on_each_phase_of_a_container_is_logged_with_its_time_and_without_it_nothing_is()
    {
        _shim.Config.Trace = true;
        await _shim.RunAsync("c1");
        _shim.Agent.Send("/tasks/exit", new TaskExit { ContainerId = "c1", Id = "c1", ExitStatus = 0, ExitedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) });
        Assert.True(await EventuallyAsync(() => _shim.TraceLog.Messages.Any(m => m.StartsWith("trace task c1: start to exit ", StringComparison.Ordinal))));
        await _shim.Service.DeleteAsync(new DeleteRequest { Id = "c1" }, FakeVmShim.Call());

        string[] phases = [.. _shim.TraceLog.Messages.Select(m => System.Text.RegularExpressions.Regex.Replace(m, @" [0-9.]+ ms$", " N ms"))];
        Assert.Equal(
            [
                "trace task c1: VM ready N ms",
                "trace task c1: rootfs copied and attached N ms",
                "trace task c1: agent create and stdio N ms",
                "trace task c1: create N ms",
                "trace task c1: start N ms",
                "trace task c1: start to exit N ms",
                "trace task c1: rootfs detached N ms",
                "trace task c1: delete N ms",
            ],
            phases);
    }

    [Fact]
    public async Task Without_the_trace_no_phase_is_logged()
    {
        await _shim.RunAsync("c1");
        await _shim.Service.DeleteAsync(new DeleteRequest { Id = "c1" }, FakeVmShim.Call());

        Assert.Empty(_shim.TraceLog.Messages);
    }

    private async Task<(Status, uint)> StatusAsync(string id)
    {
        StateResponse state = await _shim.Service.StateAsync(new StateRequest { Id = id }, FakeVmShim.Call());
        return (state.Status, state.ExitStatus);
    }

    private static Task<TtrpcException> ExpectNotFoundAsync(Func<Task> call) => ExpectStatusAsync(StatusCode.NotFound, call);

    private static async Task<TtrpcException> ExpectStatusAsync(StatusCode expected, Func<Task> call)
    {
        TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(call);
        Assert.True(e.StatusCode == expected, $"expected {expected}, got {e.StatusCode}: {e.Message}");
        return e;
    }

    private static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        for (int i = 0; i < 600 && !condition(); i++)
        {
            await Task.Delay(50);
        }

        return condition();
    }
}
