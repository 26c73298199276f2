using System.Text.Json;
using FirecrackerContainerd.Control.Protos;
using FirecrackerContainerd.Control.Service;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Ttrpc;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Control.Tests;

/// <summary>The daemon's "Firecracker" service against fake shims on the sockets it computes.</summary>
public sealed class ForwardingTests : IAsyncLifetime
{
    private readonly ControlHarness _h = new();

    public Task InitializeAsync() => _h.InitializeAsync();

    public Task DisposeAsync() => _h.DisposeAsync();

    [Fact]
    public async Task Every_call_reaches_the_shim_of_its_vm_with_the_callers_namespace()
    {
        var shim = await _h.StartShimAsync("ns1", "vm1");
        await _h.CallAsync("ns1", "PauseVM", new PauseVMRequest { VMID = "vm1" }, Empty.Parser);
        await _h.CallAsync("ns1", "ResumeVM", new ResumeVMRequest { VMID = "vm1" }, Empty.Parser);
        var info = await _h.CallAsync("ns1", "GetVMInfo", new GetVMInfoRequest { VMID = "vm1" }, GetVMInfoResponse.Parser);
        await _h.CallAsync("ns1", "SetVMMetadata", new SetVMMetadataRequest { VMID = "vm1", Metadata = "{\"a\":1}" }, Empty.Parser);
        await _h.CallAsync("ns1", "UpdateVMMetadata", new UpdateVMMetadataRequest { VMID = "vm1", Metadata = "{\"b\":2}" }, Empty.Parser);
        var metadata = await _h.CallAsync("ns1", "GetVMMetadata", new GetVMMetadataRequest { VMID = "vm1" }, GetVMMetadataResponse.Parser);
        var stats = await _h.CallAsync("ns1", "GetBalloonStats", new GetBalloonStatsRequest { VMID = "vm1" }, GetBalloonStatsResponse.Parser);

        Assert.Equal("/run/vm/firecracker.vsock", info.VSockPath);
        Assert.Equal("{\"a\":1}", metadata.Metadata);
        Assert.Equal(64, stats.ActualMib);
        Assert.Equal(
            ["PauseVM ns1 vm1", "ResumeVM ns1 vm1", "GetVMInfo ns1 vm1", "SetVMMetadata ns1 vm1", "UpdateVMMetadata ns1 vm1",
             "GetVMMetadata ns1 vm1", "GetBalloonStats ns1 vm1"],
            shim.Calls.ToArray());
    }

    [Fact]
    public async Task CreateVM_launches_the_shim_in_a_bundle_naming_the_vm_then_forwards_and_a_second_create_is_AlreadyExists()
    {
        var created = await _h.CallAsync("ns1", "CreateVM",
            new CreateVMRequest { VMID = "vm1", MachineCfg = new FirecrackerMachineConfiguration { VcpuCount = 2 } }, CreateVMResponse.Parser);

        Assert.Equal("vm1", created.VMID);
        Assert.Equal(["CreateVM ns1 vm1 vcpus=2 exit=False"], _h.Shims["ns1/vm1"].Calls.ToArray());
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(_h.Options.StateDir, "ns1", "vm1", "config.json")));
        Assert.Equal("vm1", config.RootElement.GetProperty("annotations").GetProperty("aws.firecracker.vm.id").GetString());

        var again = await Assert.ThrowsAsync<TtrpcException>(() =>
            _h.CallAsync("ns1", "CreateVM", new CreateVMRequest { VMID = "vm1" }, CreateVMResponse.Parser));
        Assert.Equal(StatusCode.AlreadyExists, again.StatusCode);

        var list = await _h.CallAsync("ns1", "ListVMs", new ListVMsRequest(), ListVMsResponse.Parser, VmListService.ServiceName);
        var listed = Assert.Single(list.VMs);
        Assert.Equal(("vm1", "ns1", Environment.ProcessId), (listed.VMID, listed.Namespace, listed.ShimPid));
        Assert.Empty((await _h.CallAsync("ns2", "ListVMs", new ListVMsRequest(), ListVMsResponse.Parser, VmListService.ServiceName)).VMs);
    }

    [Fact]
    public async Task A_vm_is_found_only_in_its_own_namespace()
    {
        await _h.StartShimAsync("ns1", "vm1");
        var e = await Assert.ThrowsAsync<TtrpcException>(() =>
            _h.CallAsync("ns2", "PauseVM", new PauseVMRequest { VMID = "vm1" }, Empty.Parser));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Contains("vm vm1 not found in namespace ns2", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ns1", "../vm")]
    [InlineData("ns1", "")]
    [InlineData("ns1", "vm/1")]
    [InlineData("a/b", "vm1")]
    [InlineData("-ns", "vm1")]
    public async Task Bad_vm_ids_and_namespaces_are_InvalidArgument(string ns, string vmId)
    {
        foreach (Func<Task> call in new Func<Task>[]
        {
            () => _h.CallAsync(ns, "CreateVM", new CreateVMRequest { VMID = vmId }, CreateVMResponse.Parser),
            () => _h.CallAsync(ns, "GetVMInfo", new GetVMInfoRequest { VMID = vmId }, GetVMInfoResponse.Parser),
            () => _h.CallAsync(ns, "StopVM", new StopVMRequest { VMID = vmId }, Empty.Parser),
        })
        {
            var e = await Assert.ThrowsAsync<TtrpcException>(call);
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        }

        Assert.False(Directory.Exists(_h.Options.StateDir + "/a"));
    }

    [Fact]
    public async Task An_answer_about_another_vm_is_refused_as_Internal()
    {
        var shim = await _h.StartShimAsync("ns1", "vm1");
        shim.AnswerWrongVm = true;
        var e = await Assert.ThrowsAsync<TtrpcException>(() =>
            _h.CallAsync("ns1", "GetVMInfo", new GetVMInfoRequest { VMID = "vm1" }, GetVMInfoResponse.Parser));
        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.Contains("invalid", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_vm_state_the_daemon_does_not_know_is_refused_as_Internal_and_a_known_one_passes()
    {
        var shim = await _h.StartShimAsync("ns1", "vm1");
        shim.State = "Paused";
        var info = await _h.CallAsync("ns1", "GetVMInfo", new GetVMInfoRequest { VMID = "vm1" }, GetVMInfoResponse.Parser);
        Assert.Equal("Paused", info.State);

        shim.State = "Paused\u001b[2J";
        var e = await Assert.ThrowsAsync<TtrpcException>(() =>
            _h.CallAsync("ns1", "GetVMInfo", new GetVMInfoRequest { VMID = "vm1" }, GetVMInfoResponse.Parser));
        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.Contains("unknown state", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metadata_that_is_not_json_is_refused_before_it_reaches_the_shim()
    {
        var shim = await _h.StartShimAsync("ns1", "vm1");
        var e = await Assert.ThrowsAsync<TtrpcException>(() =>
            _h.CallAsync("ns1", "SetVMMetadata", new SetVMMetadataRequest { VMID = "vm1", Metadata = "{oops" }, Empty.Parser));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Empty(shim.Calls);
    }

    [Fact]
    public async Task StopVM_of_a_shim_that_exits_returns_and_forgets_the_vm()
    {
        await _h.CallAsync("ns1", "CreateVM", new CreateVMRequest { VMID = "vm1" }, CreateVMResponse.Parser);
        await _h.CallAsync("ns1", "StopVM", new StopVMRequest { VMID = "vm1", TimeoutSeconds = 10 }, Empty.Parser);

        Assert.Contains("StopVM ns1 vm1", _h.Shims["ns1/vm1"].Calls);
        Assert.False(Directory.Exists(Path.Combine(_h.Options.StateDir, "ns1", "vm1")));
        var e = await Assert.ThrowsAsync<TtrpcException>(() =>
            _h.CallAsync("ns1", "GetVMInfo", new GetVMInfoRequest { VMID = "vm1" }, GetVMInfoResponse.Parser));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
    }

    [Fact]
    public async Task StopVM_kills_a_shim_that_does_not_exit_within_the_timeout_and_cleans_up()
    {
        var shim = await _h.StartShimProcessAsync("hang", "ns1", "hang");
        await _h.CallAsync("ns1", "StopVM", new StopVMRequest { VMID = "hang", TimeoutSeconds = 1 }, Empty.Parser);

        Assert.True(shim.HasExited);
        Assert.Equal(137, shim.ExitCode);
        Assert.False(File.Exists(_h.Endpoint("ns1", "hang").SocketPath));
        Assert.False(Directory.Exists(Path.Combine(_h.Options.StateDir, "ns1", "hang")));
        Assert.Contains("ns1/hang", _h.Cleanups);
    }

    [Fact]
    public async Task A_shim_crashing_mid_call_gives_a_clear_error_and_the_daemon_reports_the_vm_gone_and_keeps_serving()
    {
        await _h.StartShimProcessAsync("crash", "ns1", "crash");
        var other = await _h.StartShimAsync("ns1", "vm2");

        var e = await Assert.ThrowsAsync<TtrpcException>(() =>
            _h.CallAsync("ns1", "PauseVM", new PauseVMRequest { VMID = "crash" }, Empty.Parser));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("shim exited during the call", e.Message, StringComparison.Ordinal);

        var gone = await Assert.ThrowsAsync<TtrpcException>(() =>
            _h.CallAsync("ns1", "GetVMInfo", new GetVMInfoRequest { VMID = "crash" }, GetVMInfoResponse.Parser));
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
        Assert.Empty((await _h.CallAsync("ns1", "ListVMs", new ListVMsRequest(), ListVMsResponse.Parser, VmListService.ServiceName)).VMs);
        Assert.Contains("ns1/crash", _h.Cleanups);

        await _h.CallAsync("ns1", "PauseVM", new PauseVMRequest { VMID = "vm2" }, Empty.Parser);
        Assert.Contains("PauseVM ns1 vm2", other.Calls);
    }
}
