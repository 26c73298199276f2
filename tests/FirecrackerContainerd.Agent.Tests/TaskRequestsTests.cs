using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Agent.Tasks;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Tests;

public sealed class TaskRequestsTests
{
    [Fact]
    public void A_create_yields_its_id_bundle_drive_spec_and_stdio_paths()
    {
        var extra = new ExtraData { JsonSpec = ByteString.CopyFromUtf8("{}"), StdinPort = 11000, StdoutPort = 11001, StderrPort = 11002, DriveID = "stub3" };

        ContainerRequest create = TaskRequests.Parse(new CreateTaskRequest { Id = "c1", Bundle = "/container/c1", Options = Any.Pack(extra) });

        Assert.Equal("c1", create.Id);
        Assert.Equal("/container/c1", create.Bundle);
        Assert.Equal("stub3", create.DriveId);
        Assert.Equal("{}"u8.ToArray(), create.Spec.ToArray());
        Assert.Equal(new StdioPaths(false, 11000, 11001, 11002), create.Stdio);
    }

    [Fact]
    public void A_terminal_create_yields_terminal_stdio_paths_without_stderr()
    {
        var extra = new ExtraData { JsonSpec = ByteString.CopyFromUtf8("{}"), StdinPort = 11000, StdoutPort = 11001 };

        ContainerRequest create = TaskRequests.Parse(new CreateTaskRequest { Id = "c1", Terminal = true, Options = Any.Pack(extra) });

        Assert.Equal(new StdioPaths(true, 11000, 11001, 0), create.Stdio);
    }

    [Fact]
    public void ExtraData_under_the_bare_type_url_is_read_too()
    {
        var options = new Any { TypeUrl = "ExtraData", Value = new ExtraData { JsonSpec = ByteString.CopyFromUtf8("{}"), StdoutPort = 7 }.ToByteString() };

        Assert.Equal(7u, TaskRequests.Parse(new CreateTaskRequest { Id = "c1", Options = options }).Stdio.StdoutPort);
    }

    [Theory]
    [InlineData("")]
    [InlineData("../escape")]
    [InlineData("a/b")]
    [InlineData("c1\n")]
    public void A_create_with_an_invalid_container_id_is_refused(string id)
    {
        var extra = new ExtraData { JsonSpec = ByteString.CopyFromUtf8("{}") };

        TaskException e = Refused(() => TaskRequests.Parse(new CreateTaskRequest { Id = id, Options = Any.Pack(extra) }));

        Assert.StartsWith("invalid container id: identifier ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_create_whose_options_are_not_ExtraData_is_refused_naming_the_type_url()
    {
        TaskException none = Refused(() => TaskRequests.Parse(new CreateTaskRequest { Id = "c1" }));
        TaskException other = Refused(() => TaskRequests.Parse(new CreateTaskRequest { Id = "c1", Options = Any.Pack(new Empty()) }));

        Assert.Equal("Create options must be an ExtraData message, got \"\"", none.Message);
        Assert.Equal("Create options must be an ExtraData message, got \"type.googleapis.com/google.protobuf.Empty\"", other.Message);
    }

    [Fact]
    public void A_create_with_malformed_ExtraData_is_refused()
    {
        var options = new Any { TypeUrl = "type.googleapis.com/ExtraData", Value = ByteString.CopyFrom(0x0a, 0x05, 0x01) };

        TaskException e = Refused(() => TaskRequests.Parse(new CreateTaskRequest { Id = "c1", Options = options }));

        Assert.StartsWith("Create options: malformed ExtraData: ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_create_without_a_spec_is_refused()
    {
        TaskException e = Refused(() => TaskRequests.Parse(new CreateTaskRequest { Id = "c1", Options = Any.Pack(new ExtraData { StdoutPort = 11001 }) }));

        Assert.Equal("create c1: ExtraData carries no OCI spec", e.Message);
    }

    [Fact]
    public void A_terminal_with_a_stderr_port_is_refused_for_a_create_and_an_exec()
    {
        var extra = new ExtraData { JsonSpec = ByteString.CopyFromUtf8("{}"), StdoutPort = 11001, StderrPort = 11002 };

        TaskException create = Refused(() => TaskRequests.Parse(new CreateTaskRequest { Id = "c1", Terminal = true, Options = Any.Pack(extra) }));
        TaskException exec = Refused(() => TaskRequests.Parse(new ExecProcessRequest { Id = "c1", ExecId = "e1", Terminal = true, Spec = Any.Pack(extra) }));

        Assert.Equal("create c1: a process with a terminal has no separate stderr, yet stderr port 11002 was given", create.Message);
        Assert.Equal("exec e1: a process with a terminal has no separate stderr, yet stderr port 11002 was given", exec.Message);
    }

    [Fact]
    public void An_exec_yields_its_container_exec_id_process_spec_and_stdio_paths()
    {
        var extra = new ExtraData { JsonSpec = ByteString.CopyFromUtf8("""{"args":["true"]}"""), StdinPort = 11003 };

        ExecRequest exec = TaskRequests.Parse(new ExecProcessRequest { Id = "c1", ExecId = "e1", Spec = Any.Pack(extra) });

        Assert.Equal(("c1", "e1"), (exec.ContainerId, exec.ExecId));
        Assert.Equal("""{"args":["true"]}"""u8.ToArray(), exec.ProcessSpec.ToArray());
        Assert.Equal(new StdioPaths(false, 11003, 0, 0), exec.Stdio);
    }

    [Theory]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("exec one")]
    public void An_exec_with_an_invalid_exec_id_is_refused(string execId)
    {
        TaskException e = Refused(() => TaskRequests.Parse(new ExecProcessRequest { Id = "c1", ExecId = execId, Spec = Any.Pack(new ExtraData()) }));

        Assert.StartsWith("invalid exec id: identifier ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_exec_whose_spec_is_not_ExtraData_is_refused()
    {
        TaskException e = Refused(() => TaskRequests.Parse(new ExecProcessRequest { Id = "c1", ExecId = "e1", Spec = Any.Pack(new Empty()) }));

        Assert.StartsWith("Exec spec must be an ExtraData message", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(9u)]
    [InlineData(64u)]
    public void A_kill_with_a_linux_signal_number_is_read(uint signal)
    {
        Assert.Equal((int)signal, TaskRequests.SignalOf(new KillRequest { Id = "c1", Signal = signal }));
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(65u)]
    [InlineData(99u)]
    public void A_kill_with_a_number_that_is_no_signal_is_refused(uint signal)
    {
        TaskException e = Refused(() => TaskRequests.SignalOf(new KillRequest { Id = "c1", Signal = signal }));

        Assert.Equal($"kill c1: signal {signal} is not a signal", e.Message);
    }

    [Fact]
    public void A_resize_takes_width_as_columns_and_height_as_rows_up_to_what_a_terminal_holds()
    {
        Assert.Equal(((ushort)100, (ushort)30), TaskRequests.SizeOf(new ResizePtyRequest { Id = "c1", Width = 100, Height = 30 }));
        Assert.Equal((ushort.MaxValue, ushort.MaxValue), TaskRequests.SizeOf(new ResizePtyRequest { Id = "c1", Width = ushort.MaxValue, Height = ushort.MaxValue }));

        TaskException e = Refused(() => TaskRequests.SizeOf(new ResizePtyRequest { Id = "c1", ExecId = "e1", Width = 65536, Height = 30 }));
        Assert.Equal("resize terminal of c1/e1: 65536x30 is larger than a terminal can be", e.Message);
    }

    [Fact]
    public void An_update_without_resources_is_refused()
    {
        Assert.Equal("{}"u8.ToArray(), TaskRequests.ResourcesOf(new UpdateTaskRequest { Id = "c1", Resources = new Any { Value = ByteString.CopyFromUtf8("{}") } }).ToArray());

        Assert.Equal("update c1: no resources given", Refused(() => TaskRequests.ResourcesOf(new UpdateTaskRequest { Id = "c1" })).Message);
        Assert.Equal("update c1: no resources given", Refused(() => TaskRequests.ResourcesOf(new UpdateTaskRequest { Id = "c1", Resources = new Any() })).Message);
    }

    private static TaskException Refused(Func<object> parse)
    {
        TaskException e = Assert.Throws<TaskException>(parse);
        Assert.Equal(TaskError.InvalidArgument, e.Error);
        return e;
    }
}
