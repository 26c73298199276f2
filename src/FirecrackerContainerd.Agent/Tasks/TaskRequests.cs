using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>What a Create asks for, its fields checked.</summary>
/// <param name="Id">The container id (containerd's identifier rules).</param>
/// <param name="Bundle">The bundle the host names (<c>/container/&lt;id&gt;</c>), or empty.</param>
/// <param name="DriveId">The stub drive the host mounted at the bundle's rootfs, or empty.</param>
/// <param name="Spec">The OCI config.json as the host sent it (not empty).</param>
/// <param name="Stdio">Where the init's stdio go.</param>
internal sealed record ContainerRequest(string Id, string Bundle, string DriveId, ReadOnlyMemory<byte> Spec, StdioPaths Stdio);

/// <summary>What an Exec asks for, its fields checked.</summary>
/// <param name="ContainerId">The container to run it in.</param>
/// <param name="ExecId">The exec id (containerd's identifier rules).</param>
/// <param name="ProcessSpec">The OCI process JSON as the host sent it.</param>
/// <param name="Stdio">Where the exec's stdio go.</param>
internal sealed record ExecRequest(string ContainerId, string ExecId, ReadOnlyMemory<byte> ProcessSpec, StdioPaths Stdio);

/// <summary>
/// Reads the task API's requests into what the agent acts on: ids checked against containerd's rules, the host's
/// <c>ExtraData</c> unpacked, stdio ports that fit the terminal flag, signals and sizes in range. Every refusal is
/// <see cref="TaskError.InvalidArgument"/> and names the request.
/// </summary>
internal static class TaskRequests
{
    /// <summary>The highest signal number Linux knows (SIGRTMAX).</summary>
    private const uint MaxSignal = 64;

    public static ContainerRequest Parse(CreateTaskRequest request)
    {
        ValidateId(request.Id, "container id");
        ExtraData extra = UnpackExtraData(request.Options, "Create options");
        string what = $"create {request.Id}";
        if (extra.JsonSpec.IsEmpty)
        {
            throw new TaskException(TaskError.InvalidArgument, $"{what}: ExtraData carries no OCI spec");
        }

        return new ContainerRequest(request.Id, request.Bundle, extra.DriveID, extra.JsonSpec.Memory, StdioOf(request.Terminal, extra, what));
    }

    public static ExecRequest Parse(ExecProcessRequest request)
    {
        ValidateId(request.ExecId, "exec id");
        ExtraData extra = UnpackExtraData(request.Spec, "Exec spec");
        return new ExecRequest(request.Id, request.ExecId, extra.JsonSpec.Memory, StdioOf(request.Terminal, extra, $"exec {request.ExecId}"));
    }

    /// <summary>The signal a Kill sends.</summary>
    public static int SignalOf(KillRequest request) => request.Signal is 0 or > MaxSignal
        ? throw new TaskException(TaskError.InvalidArgument, $"kill {request.Id}: signal {request.Signal} is not a signal")
        : (int)request.Signal;

    /// <summary>The window size a ResizePty sets, in columns and rows.</summary>
    public static (ushort Columns, ushort Rows) SizeOf(ResizePtyRequest request) =>
        request.Width > ushort.MaxValue || request.Height > ushort.MaxValue
            ? throw new TaskException(TaskError.InvalidArgument,
                $"resize terminal of {request.Id}/{request.ExecId}: {request.Width}x{request.Height} is larger than a terminal can be")
            : ((ushort)request.Width, (ushort)request.Height);

    /// <summary>The OCI LinuxResources JSON an Update applies.</summary>
    public static ReadOnlyMemory<byte> ResourcesOf(UpdateTaskRequest request) => request.Resources is null || request.Resources.Value.IsEmpty
        ? throw new TaskException(TaskError.InvalidArgument, $"update {request.Id}: no resources given")
        : request.Resources.Value.Memory;

    private static void ValidateId(string id, string what)
    {
        try
        {
            Identifiers.Validate(id);
        }
        catch (InvalidIdentifierException e)
        {
            throw new TaskException(TaskError.InvalidArgument, $"invalid {what}: {e.Message}", e);
        }
    }

    private static ExtraData UnpackExtraData(Any? any, string what)
    {
        if (any is null || !any.TypeUrl.EndsWith("/ExtraData", StringComparison.Ordinal) && any.TypeUrl != "ExtraData")
        {
            throw new TaskException(TaskError.InvalidArgument, $"{what} must be an ExtraData message, got \"{any?.TypeUrl}\"");
        }

        try
        {
            return ExtraData.Parser.ParseFrom(any.Value);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new TaskException(TaskError.InvalidArgument, $"{what}: malformed ExtraData: {e.Message}", e);
        }
    }

    // A terminal merges stderr into stdout: the host must not wait for a stream that never comes.
    private static StdioPaths StdioOf(bool terminal, ExtraData extra, string what) => terminal && extra.StderrPort != 0
        ? throw new TaskException(TaskError.InvalidArgument,
            $"{what}: a process with a terminal has no separate stderr, yet stderr port {extra.StderrPort} was given")
        : new StdioPaths(terminal, extra.StdinPort, extra.StdoutPort, extra.StderrPort);
}
