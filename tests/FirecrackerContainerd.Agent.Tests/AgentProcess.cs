using System.Diagnostics;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Ttrpc.Client;

namespace FirecrackerContainerd.Agent.Tests;

/// <summary>
/// The agent run as its own process on this host (ttrpc and stdio on Unix sockets, runc as the OCI
/// runtime, bundles under a temp dir), the way the VM runs it, minus the VM.
/// </summary>
internal sealed class AgentProcess : IAsyncDisposable
{
    private readonly Process _process;

    private AgentProcess(Process process, string root, TtrpcClient client)
    {
        _process = process;
        Root = root;
        Client = client;
    }

    public string Root { get; }

    public string BundleRoot => Path.Combine(Root, "bundles");

    public string StdioDirectory => Path.Combine(Root, "stdio");

    public TtrpcClient Client { get; }

    public static async Task<AgentProcess> StartAsync(CancellationToken cancellationToken)
    {
        string runc = RequireOnPath("runc", "runc");
        RequireOnPath("busybox", "busybox-static");
        string root = Directory.CreateTempSubdirectory("fc-agent-").FullName;
        Directory.CreateDirectory(Path.Combine(root, "bundles"));
        Directory.CreateDirectory(Path.Combine(root, "stdio"));
        string socket = Path.Combine(root, "agent.sock");
        // FC_AGENT_TEST_BINARY=<path>: run that agent executable (the native AOT build the guest gets) instead of the test build's dll.
        string? binary = Environment.GetEnvironmentVariable("FC_AGENT_TEST_BINARY");
        var info = new ProcessStartInfo(string.IsNullOrEmpty(binary) ? "dotnet" : binary) { RedirectStandardError = true, RedirectStandardOutput = true };
        if (string.IsNullOrEmpty(binary))
        {
            info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "fc-agent.dll"));
        }

        foreach (string arg in new[]
        {
            "--unix", socket, "--stdio-dir", Path.Combine(root, "stdio"),
            "--runtime", runc, "--bundle-root", Path.Combine(root, "bundles"), "--state-root", Path.Combine(root, "state"), "--metadata-dir", Path.Combine(root, "metadata"),
        })
        {
            info.ArgumentList.Add(arg);
        }

        // FC_AGENT_TEST_TRACE=<file>: the agent's --trace lines go to that file, for diagnosing a failure.
        string? traceFile = Environment.GetEnvironmentVariable("FC_AGENT_TEST_TRACE");
        if (!string.IsNullOrEmpty(traceFile))
        {
            info.ArgumentList.Add("--trace");
        }

        Process process = Process.Start(info)!;
        _ = process.StandardOutput.ReadToEndAsync(cancellationToken);
        _ = string.IsNullOrEmpty(traceFile)
            ? process.StandardError.ReadToEndAsync(cancellationToken)
            : CopyTraceAsync(process.StandardError, traceFile);
        while (!File.Exists(socket))
        {
            if (process.HasExited)
            {
                Assert.Fail($"the agent exited with status {process.ExitCode} before serving");
            }

            await Task.Delay(20, cancellationToken);
        }

        // The socket file exists from bind(2) on, a moment before listen(2): retry until it accepts.
        while (true)
        {
            try
            {
                TtrpcClient client = await TtrpcClient.ConnectUnixAsync(socket, cancellationToken);
                return new AgentProcess(process, root, client);
            }
            catch (IOException) when (!process.HasExited && !cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(20, cancellationToken);
            }
            catch
            {
                // Nothing owns the agent yet: stop it here rather than leave it running.
                process.Kill();
                process.Dispose();
                throw;
            }
        }
    }

    /// <summary>Lays out a bundle whose rootfs is busybox, as the drive mount would in the VM.</summary>
    public byte[] PrepareBundle(string id, params string[] args)
    {
        string rootfs = Path.Combine(BundleRoot, id, "rootfs");
        Directory.CreateDirectory(Path.Combine(rootfs, "bin"));
        foreach (string dir in new[] { "proc", "dev", "sys", "tmp", "etc" })
        {
            Directory.CreateDirectory(Path.Combine(rootfs, dir));
        }

        File.Copy(RequireOnPath("busybox", "busybox-static"), Path.Combine(rootfs, "bin", "busybox"));
        foreach (string applet in new[] { "sh", "echo", "cat", "sleep", "id", "wc", "head", "true", "tty", "stty" })
        {
            File.CreateSymbolicLink(Path.Combine(rootfs, "bin", applet), "busybox");
        }

        return SpecJson(args);
    }

    /// <summary>A minimal OCI runtime spec running <paramref name="args"/>.</summary>
    public static byte[] SpecJson(params string[] args)
    {
        var spec = new JsonObject
        {
            ["ociVersion"] = "1.0.2",
            ["process"] = ProcessJson(args),
            ["root"] = new JsonObject { ["path"] = "rootfs", ["readonly"] = false },
            ["hostname"] = "container",
            ["mounts"] = new JsonArray(
                new JsonObject { ["destination"] = "/proc", ["type"] = "proc", ["source"] = "proc" },
                new JsonObject { ["destination"] = "/dev", ["type"] = "tmpfs", ["source"] = "tmpfs", ["options"] = new JsonArray("nosuid", "strictatime", "mode=755", "size=65536k") },
                new JsonObject { ["destination"] = "/dev/pts", ["type"] = "devpts", ["source"] = "devpts", ["options"] = new JsonArray("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620") }),
            ["linux"] = new JsonObject
            {
                ["namespaces"] = new JsonArray(
                    new JsonObject { ["type"] = "pid" },
                    new JsonObject { ["type"] = "ipc" },
                    new JsonObject { ["type"] = "uts" },
                    new JsonObject { ["type"] = "mount" }),
            },
        };
        return System.Text.Encoding.UTF8.GetBytes(spec.ToJsonString());
    }

    public static JsonObject ProcessJson(params string[] args) => new()
    {
        ["terminal"] = false,
        ["user"] = new JsonObject { ["uid"] = 0, ["gid"] = 0 },
        ["args"] = new JsonArray(args.Select(a => (JsonNode)a).ToArray()),
        ["env"] = new JsonArray("PATH=/bin"),
        ["cwd"] = "/",
    };

    /// <summary>Calls <paramref name="method"/> of containerd's task service on the agent.</summary>
    public async Task<T> CallTaskAsync<T>(string method, Google.Protobuf.IMessage request, CancellationToken cancellationToken)
        where T : Google.Protobuf.IMessage<T>, new()
    {
        return await Client.CallAsync("containerd.task.v2.Task", method, request, new Google.Protobuf.MessageParser<T>(() => new T()), cancellationToken: cancellationToken);
    }

    /// <summary>Connects to the agent's stdio port <paramref name="port"/>, as the host does.</summary>
    public async Task<System.Net.Sockets.Socket> ConnectStdioAsync(uint port, CancellationToken cancellationToken)
    {
        var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(StdioDirectory, $"{port}.sock")), cancellationToken);
        return socket;
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        await DeleteLeftoverContainersAsync();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    // A container a test left behind (created and never started, or still running) would outlive the
    // agent, holding its cgroup: runc deletes it, by the state the agent's runc kept.
    private async Task DeleteLeftoverContainersAsync()
    {
        string state = Path.Combine(Root, "state");
        if (!Directory.Exists(state))
        {
            return;
        }

        foreach (string container in Directory.GetDirectories(state).Select(Path.GetFileName).Where(n => n is not null && !n.StartsWith('.'))!)
        {
            var info = new ProcessStartInfo(RequireOnPath("runc", "runc")) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (string arg in new[] { "--root", state, "delete", "--force", container })
            {
                info.ArgumentList.Add(arg);
            }

            using Process runc = Process.Start(info)!;
            await Task.WhenAll(runc.StandardOutput.ReadToEndAsync(), runc.StandardError.ReadToEndAsync(), runc.WaitForExitAsync());
        }
    }

    private static async Task CopyTraceAsync(StreamReader trace, string file)
    {
        string? line;
        while ((line = await trace.ReadLineAsync()) is not null)
        {
            await File.AppendAllTextAsync(file, line + "\n");
        }
    }

    internal static string RequireOnPath(string name, string package)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Append("/usr/sbin").Append("/bin"))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        Assert.Fail($"{name} is not installed: run scripts/install-deps (Debian package {package})");
        return string.Empty;
    }
}
