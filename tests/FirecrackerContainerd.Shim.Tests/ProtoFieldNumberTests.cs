using Google.Protobuf.Reflection;

namespace FirecrackerContainerd.Shim.Tests;

/// <summary>The wire field numbers of our .proto files, checked against the published API (a typo here breaks interop silently).</summary>
public class ProtoFieldNumberTests
{
    public static TheoryData<MessageDescriptor, string> Messages => new()
    {
        { Protos.TaskV2.CreateTaskRequest.Descriptor, "id=1 bundle=2 rootfs=3 terminal=4 stdin=5 stdout=6 stderr=7 checkpoint=8 parent_checkpoint=9 options=10" },
        { Protos.TaskV2.CreateTaskResponse.Descriptor, "pid=1" },
        { Protos.TaskV2.StartRequest.Descriptor, "id=1 exec_id=2" },
        { Protos.TaskV2.DeleteResponse.Descriptor, "pid=1 exit_status=2 exited_at=3" },
        { Protos.TaskV2.ExecProcessRequest.Descriptor, "id=1 exec_id=2 terminal=3 stdin=4 stdout=5 stderr=6 spec=7" },
        { Protos.TaskV2.ResizePtyRequest.Descriptor, "id=1 exec_id=2 width=3 height=4" },
        { Protos.TaskV2.StateResponse.Descriptor, "id=1 bundle=2 pid=3 status=4 stdin=5 stdout=6 stderr=7 terminal=8 exit_status=9 exited_at=10 exec_id=11" },
        { Protos.TaskV2.KillRequest.Descriptor, "id=1 exec_id=2 signal=3 all=4" },
        { Protos.TaskV2.CloseIORequest.Descriptor, "id=1 exec_id=2 stdin=3" },
        { Protos.TaskV2.PidsResponse.Descriptor, "processes=1" },
        { Protos.TaskV2.CheckpointTaskRequest.Descriptor, "id=1 path=2 options=3" },
        { Protos.TaskV2.UpdateTaskRequest.Descriptor, "id=1 resources=2 annotations=3" },
        { Protos.TaskV2.WaitResponse.Descriptor, "exit_status=1 exited_at=2" },
        { Protos.TaskV2.StatsResponse.Descriptor, "stats=1" },
        { Protos.TaskV2.ConnectResponse.Descriptor, "shim_pid=1 task_pid=2 version=3" },
        { Protos.TaskV2.ShutdownRequest.Descriptor, "id=1 now=2" },
        { Protos.Containerd.Types.Mount.Descriptor, "type=1 source=2 target=3 options=4" },
        { Protos.Containerd.TaskTypes.ProcessInfo.Descriptor, "pid=1 info=2" },
        { Protos.Containerd.TaskTypes.Process.Descriptor, "container_id=1 id=2 pid=3 status=4 stdin=5 stdout=6 stderr=7 terminal=8 exit_status=9 exited_at=10" },
        { Protos.Events.TaskCreate.Descriptor, "container_id=1 bundle=2 rootfs=3 io=4 checkpoint=5 pid=6" },
        { Protos.Events.TaskIO.Descriptor, "stdin=1 stdout=2 stderr=3 terminal=4" },
        { Protos.Events.TaskStart.Descriptor, "container_id=1 pid=2" },
        { Protos.Events.TaskDelete.Descriptor, "container_id=1 pid=2 exit_status=3 exited_at=4 id=5" },
        { Protos.Events.TaskExit.Descriptor, "container_id=1 id=2 pid=3 exit_status=4 exited_at=5" },
        { Protos.Events.TaskExecStarted.Descriptor, "container_id=1 exec_id=2 pid=3" },
        { Protos.Events.TaskCheckpointed.Descriptor, "container_id=1 checkpoint=2" },
        { Protos.EventsService.ForwardRequest.Descriptor, "envelope=1" },
        { Protos.EventsService.Envelope.Descriptor, "timestamp=1 namespace=2 topic=3 event=4" },
        { Protos.Containerd.Types.Envelope.Descriptor, "timestamp=1 namespace=2 topic=3 event=4" },
        { Protos.FcControl.CreateVMRequest.Descriptor, "VMID=1 MachineCfg=2 KernelImagePath=3 KernelArgs=4 RootDrive=5 DriveMounts=6 NetworkInterfaces=7 ContainerCount=8 ExitAfterAllTasksDeleted=9 JailerConfig=10 TimeoutSeconds=11 LogFifoPath=12 MetricsFifoPath=13 BalloonDevice=14" },
        { Protos.FcControl.GetVMInfoResponse.Descriptor, "VMID=1 SocketPath=2 LogFifoPath=3 MetricsFifoPath=4 CgroupPath=5 VSockPath=6" },
        { Protos.FcControl.IPConfiguration.Descriptor, "PrimaryAddr=1 GatewayAddr=3 Nameservers=4" },
        { Protos.FcControl.ExtraData.Descriptor, "JsonSpec=1 RuncOptions=2 StdinPort=3 StdoutPort=4 StderrPort=5 DriveID=6" },
        { Protos.Agent.MountDriveRequest.Descriptor, "DriveID=1 DestinationPath=2 FilesytemType=3 Options=4" },
        { Protos.Agent.AttachRequest.Descriptor, "ID=1 ExecID=2 StdinPort=3 StdoutPort=4 StderrPort=5" },
    };

    // Fields of our own in a published message start here, far from any number upstream may use next.
    private const int OwnFieldsStart = 1000;

    [Theory]
    [MemberData(nameof(Messages))]
    public void Field_numbers_match_the_published_api(MessageDescriptor message, string expected)
    {
        string actual = string.Join(' ', message.Fields.InFieldNumberOrder().Where(f => f.FieldNumber < OwnFieldsStart).Select(f => $"{f.Name}={f.FieldNumber}"));

        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Our_own_fields_in_published_messages_are_only_those_listed_and_numbered_from_1000()
    {
        var own = Messages.Select(row => (MessageDescriptor)row[0])
            .SelectMany(m => m.Fields.InFieldNumberOrder().Where(f => f.FieldNumber >= OwnFieldsStart).Select(f => $"{m.Name}.{f.Name}={f.FieldNumber}"));

        Assert.Equal(["GetVMInfoResponse.State=1001"], own);
    }

    [Theory]
    [InlineData("containerd.task.v2.CreateTaskRequest")]
    [InlineData("containerd.events.TaskExit")]
    [InlineData("containerd.services.events.ttrpc.v1.ForwardRequest")]
    [InlineData("containerd.v1.types.ProcessInfo")]
    [InlineData("CreateVMRequest")]
    public void Full_names_match_the_type_urls_containerd_uses(string fullName)
    {
        var all = new[]
        {
            Protos.TaskV2.CreateTaskRequest.Descriptor, Protos.Events.TaskExit.Descriptor,
            Protos.EventsService.ForwardRequest.Descriptor, Protos.Containerd.TaskTypes.ProcessInfo.Descriptor,
            Protos.FcControl.CreateVMRequest.Descriptor,
        };

        Assert.Contains(all, d => d.FullName == fullName);
    }

    [Fact]
    public void Task_status_enum_has_containerds_values()
    {
        var values = Protos.Containerd.TaskTypes.TaskReflection.Descriptor.EnumTypes.Single(e => e.Name == "Status").Values.Select(v => $"{v.Name}={v.Number}");

        Assert.Equal("UNKNOWN=0 CREATED=1 RUNNING=2 STOPPED=3 PAUSED=4 PAUSING=5", string.Join(' ', values));
    }
}
