using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Vsock.Unix;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Runtime.Tests.Vm.InGuest;

/// <summary>What one container run in the guest produced, as checked on the host.</summary>
internal sealed record ContainerRun(uint Pid, uint ExitStatus, string Stdout);

/// <summary>
/// Runs a container through the shim's own <see cref="AgentClient"/>, without containerd: Create with an ExtraData
/// naming the mounted drive, dial stdout, Start, read to the end, wait for the exit event, Delete. The agent client
/// checks every answer as it does in the shim; the runner checks that the answers agree with each other.
/// </summary>
internal sealed class GuestContainerRunner(AgentClient agent, string vsockPath)
{
    /// <summary>More output than this from a test container means the guest misbehaves.</summary>
    private const int MaxStdoutBytes = 1 << 20;

    private static readonly HybridVsockDialOptions StdioDial = new(TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(5));

    /// <summary>
    /// Runs <paramref name="args"/> as container <paramref name="id"/> on the rootfs drive <paramref name="driveId"/>
    /// (mounted at its bundle's rootfs), stdout on <paramref name="stdoutPort"/>.
    /// </summary>
    public async Task<ContainerRun> RunAsync(string id, string driveId, string[] args, uint stdoutPort, CancellationToken cancellationToken)
    {
        BundleDir bundle = BundleDir.VMBundleDir(id);
        var extra = new ExtraData { JsonSpec = ByteString.CopyFromUtf8(OciSpec(id, args)), StdoutPort = stdoutPort, DriveID = driveId };
        uint pid = await agent.CreateAsync(new CreateTaskRequest { Id = id, Bundle = bundle.RootPath, Options = Any.Pack(extra) }, cancellationToken);

        using Socket stdout = await HybridVsockDialer.DialAsync(vsockPath, stdoutPort, StdioDial, cancellationToken);
        Task<string> output = ReadToEndAsync(stdout, id, cancellationToken);
        uint started = await agent.StartAsync(new StartRequest { Id = id }, cancellationToken);
        if (started != pid)
        {
            throw new InvalidDataException($"Start {id}: the guest answered pid {started}, Create said {pid}");
        }

        string text = await output;
        TaskExit exit = await NextExitAsync(id, cancellationToken);
        DeleteResponse deleted = await agent.DeleteAsync(new DeleteRequest { Id = id }, cancellationToken);
        if (deleted.Pid != pid || deleted.ExitStatus != exit.ExitStatus || exit.Pid != pid)
        {
            throw new InvalidDataException(
                $"{id}: the guest reported the exit of pid {exit.Pid} with {exit.ExitStatus} and deleted pid {deleted.Pid} with {deleted.ExitStatus}; Create said pid {pid}");
        }

        return new ContainerRun(pid, exit.ExitStatus, text);
    }

    // The shim learns of exits from the agent's event stream, as here; other events of the run are passed over.
    private async Task<TaskExit> NextExitAsync(string id, CancellationToken cancellationToken)
    {
        while (true)
        {
            Envelope envelope = await agent.NextEventAsync(cancellationToken);
            if (envelope.Event.TypeUrl != TaskExit.Descriptor.FullName)
            {
                continue;
            }

            TaskExit exit = TaskExit.Parser.ParseFrom(envelope.Event.Value);
            if (exit.ContainerId == id && exit.Id == id)
            {
                return exit.ExitStatus <= 255 ? exit : throw new InvalidDataException($"{id}: the guest reported exit status {exit.ExitStatus}");
            }
        }
    }

    private static async Task<string> ReadToEndAsync(Socket socket, string id, CancellationToken cancellationToken)
    {
        var received = new MemoryStream();
        byte[] buffer = new byte[16 * 1024];
        while (true)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            if (n == 0)
            {
                return Encoding.UTF8.GetString(received.GetBuffer(), 0, (int)received.Length);
            }

            if (received.Length + n > MaxStdoutBytes)
            {
                throw new InvalidDataException($"container {id}: stdout exceeds {MaxStdoutBytes} bytes");
            }

            received.Write(buffer, 0, n);
        }
    }

    // The least an OCI runtime needs: the process, a writable root, /proc and /dev, its own namespaces.
    private static string OciSpec(string id, string[] args)
    {
        var spec = new JsonObject
        {
            ["ociVersion"] = "1.0.2",
            ["process"] = new JsonObject
            {
                ["terminal"] = false,
                ["user"] = new JsonObject { ["uid"] = 0, ["gid"] = 0 },
                ["args"] = new JsonArray([.. args.Select(a => (JsonNode)a)]),
                ["env"] = new JsonArray("PATH=/bin", "HOME=/"),
                ["cwd"] = "/",
            },
            ["root"] = new JsonObject { ["path"] = "rootfs", ["readonly"] = false },
            ["hostname"] = id,
            ["mounts"] = new JsonArray(
                new JsonObject { ["destination"] = "/proc", ["type"] = "proc", ["source"] = "proc" },
                new JsonObject
                {
                    ["destination"] = "/dev",
                    ["type"] = "tmpfs",
                    ["source"] = "tmpfs",
                    ["options"] = new JsonArray("nosuid", "strictatime", "mode=755", "size=65536k"),
                }),
            ["linux"] = new JsonObject
            {
                ["namespaces"] = new JsonArray(
                    new JsonObject { ["type"] = "pid" },
                    new JsonObject { ["type"] = "ipc" },
                    new JsonObject { ["type"] = "uts" },
                    new JsonObject { ["type"] = "mount" }),
            },
        };
        return spec.ToJsonString();
    }
}
