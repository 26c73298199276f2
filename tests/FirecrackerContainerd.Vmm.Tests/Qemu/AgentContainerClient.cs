using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Vsock.Unix;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>What one container run in the guest produced, as checked on the host.</summary>
internal sealed record ContainerRun(uint Pid, uint ExitStatus, string Stdout);

/// <summary>
/// The host side of running a container through the agent, as the shim will: mount the patched drive,
/// Create with an ExtraData, dial stdout, Start, read to EOF, Wait, Delete, unmount. Every answer from
/// the (untrusted) guest is checked before it is believed.
/// </summary>
internal sealed class AgentContainerClient(TtrpcClient client, string vsockPath)
{
    private const string TaskService = "containerd.task.v2.Task";

    /// <summary>Linux never hands out a pid above this (PID_MAX_LIMIT on 64-bit).</summary>
    private const uint MaxPid = 4 * 1024 * 1024;

    /// <summary>Exit statuses are a byte (128 + n for signal n).</summary>
    private const uint MaxExitStatus = 255;

    /// <summary>More output than this from a test container means the guest misbehaves.</summary>
    private const int MaxStdoutBytes = 1 << 20;

    private static readonly HybridVsockDialOptions StdioDial = new(TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(5));

    public Task MountDriveAsync(string driveId, string destination, CancellationToken cancellationToken)
    {
        var request = new MountDriveRequest { DriveID = driveId, DestinationPath = destination, FilesytemType = "ext4" };
        return client.CallAsync("DriveMounter", "MountDrive", request, Empty.Parser, cancellationToken: cancellationToken);
    }

    public Task UnmountDriveAsync(string driveId, CancellationToken cancellationToken) =>
        client.CallAsync("DriveMounter", "UnmountDrive", new UnmountDriveRequest { DriveID = driveId }, Empty.Parser, cancellationToken: cancellationToken);

    /// <summary>Runs <paramref name="args"/> as container <paramref name="id"/> on its mounted rootfs, stdout on <paramref name="stdoutPort"/> (0: not wanted).</summary>
    public async Task<ContainerRun> RunAsync(string id, string[] args, uint stdoutPort, CancellationToken cancellationToken)
    {
        var extra = new ExtraData { JsonSpec = ByteString.CopyFromUtf8(OciSpec(id, args)), StdoutPort = stdoutPort };
        var create = new CreateTaskRequest { Id = id, Bundle = $"/container/{id}", Options = Any.Pack(extra) };
        CreateTaskResponse created = await client.CallAsync(TaskService, "Create", create, CreateTaskResponse.Parser, cancellationToken: cancellationToken);
        CheckPid(created.Pid, $"Create {id}");

        using Socket? stdout = stdoutPort == 0 ? null : await HybridVsockDialer.DialAsync(vsockPath, stdoutPort, StdioDial, cancellationToken);
        Task<string> output = stdout is null ? Task.FromResult(string.Empty) : ReadToEndAsync(stdout, id, cancellationToken);
        StartResponse started = await client.CallAsync(TaskService, "Start", new StartRequest { Id = id }, StartResponse.Parser, cancellationToken: cancellationToken);
        if (started.Pid != created.Pid)
        {
            throw new InvalidDataException($"Start {id}: the guest answered pid {started.Pid}, Create said {created.Pid}");
        }

        string text = await output;
        WaitResponse waited = await client.CallAsync(TaskService, "Wait", new WaitRequest { Id = id }, WaitResponse.Parser, cancellationToken: cancellationToken);
        CheckExitStatus(waited.ExitStatus, $"Wait {id}");
        DeleteResponse deleted = await client.CallAsync(TaskService, "Delete", new DeleteRequest { Id = id }, DeleteResponse.Parser, cancellationToken: cancellationToken);
        if (deleted.Pid != created.Pid || deleted.ExitStatus != waited.ExitStatus)
        {
            throw new InvalidDataException(
                $"Delete {id}: the guest answered pid {deleted.Pid} status {deleted.ExitStatus}, expected pid {created.Pid} status {waited.ExitStatus}");
        }

        return new ContainerRun(created.Pid, waited.ExitStatus, text);
    }

    private static void CheckPid(uint pid, string what)
    {
        if (pid is 0 or > MaxPid)
        {
            throw new InvalidDataException($"{what}: the guest answered pid {pid}, which no process can have");
        }
    }

    private static void CheckExitStatus(uint status, string what)
    {
        if (status > MaxExitStatus)
        {
            throw new InvalidDataException($"{what}: the guest answered exit status {status}, above {MaxExitStatus}");
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
