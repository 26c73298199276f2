using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Vm;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Runtime.Tasks;

/// <summary>
/// Creates processes in the guest the way the agent expects them: the OCI spec and the process's vsock stdio ports
/// travel in an <see cref="ExtraData"/>; once the agent answered, the host end of the stdio is connected to those
/// ports and to containerd's FIFOs.
/// </summary>
internal static class GuestProcesses
{
    /// <summary>
    /// Creates the init process of <paramref name="request"/>'s container from <paramref name="spec"/>, its rootfs
    /// mounted from <paramref name="driveId"/>.
    /// </summary>
    public static async Task<ProcessRecord> CreateInitAsync(
        MicroVm vm, CreateTaskRequest request, byte[] spec, string driveId, CancellationToken cancellationToken)
    {
        var ports = HostStdio.Ports(vm.NextPorts(), request.Stdin, request.Stdout, request.Stderr);
        var extra = new ExtraData
        {
            JsonSpec = ByteString.CopyFrom(spec),
            StdinPort = ports.Stdin,
            StdoutPort = ports.Stdout,
            StderrPort = ports.Stderr,
            DriveID = driveId,
        };
        uint pid = await vm.Agent.CreateAsync(new CreateTaskRequest
        {
            Id = request.Id,
            Bundle = BundleDir.VMBundleDir(request.Id).RootPath,
            Terminal = request.Terminal,
            Options = Any.Pack(extra),
        }, cancellationToken).ConfigureAwait(false);
        HostStdio io = await HostStdio.ConnectAsync(vm.VsockPath, ports, request.Stdin, request.Stdout, request.Stderr, cancellationToken)
            .ConfigureAwait(false);
        return new ProcessRecord(request.Id, request.Id, io, pid, (request.Stdin, request.Stdout, request.Stderr, request.Terminal));
    }

    /// <summary>Adds the exec process of <paramref name="request"/>, whose process spec it carries.</summary>
    public static async Task<ProcessRecord> ExecAsync(MicroVm vm, ExecProcessRequest request, CancellationToken cancellationToken)
    {
        var ports = HostStdio.Ports(vm.NextPorts(), request.Stdin, request.Stdout, request.Stderr);
        var extra = new ExtraData { JsonSpec = request.Spec.Value, StdinPort = ports.Stdin, StdoutPort = ports.Stdout, StderrPort = ports.Stderr };
        await vm.Agent.ExecAsync(new ExecProcessRequest
        {
            Id = request.Id,
            ExecId = request.ExecId,
            Terminal = request.Terminal,
            Spec = Any.Pack(extra),
        }, cancellationToken).ConfigureAwait(false);
        HostStdio io = await HostStdio.ConnectAsync(vm.VsockPath, ports, request.Stdin, request.Stdout, request.Stderr, cancellationToken)
            .ConfigureAwait(false);
        return new ProcessRecord(request.Id, request.ExecId, io, 0, (request.Stdin, request.Stdout, request.Stderr, request.Terminal));
    }
}
