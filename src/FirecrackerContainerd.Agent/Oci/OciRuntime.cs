using System.Text;
using System.Text.Json;
using FirecrackerContainerd.Agent.Native;
using FirecrackerContainerd.Agent.Processes;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Agent.Oci;

/// <summary>The stdio a runtime command hands to the process it creates.</summary>
/// <param name="Stdin">fd for the process's stdin.</param>
/// <param name="Stdout">fd for its stdout.</param>
/// <param name="Stderr">fd for its stderr.</param>
internal readonly record struct ProcessStdio(int Stdin, int Stdout, int Stderr);

/// <summary>
/// Drives an OCI runtime (crun or runc) through its command line. Containers in the guest live on an
/// initramfs root, where pivot_root is impossible, hence --no-pivot.
/// </summary>
internal sealed class OciRuntime
{
    private readonly string _binary;
    private readonly string _stateRoot;
    private readonly ChildReaper _reaper;
    private readonly int _devNull;

    public OciRuntime(string binary, string stateRoot, ChildReaper reaper)
    {
        _binary = binary;
        _stateRoot = stateRoot;
        _reaper = reaper;
        Name = Path.GetFileName(binary);
        Directory.CreateDirectory(stateRoot);
        _devNull = Interop.Open("/dev/null", Libc.O_RDWR);
    }

    /// <summary>The runtime's name (crun or runc).</summary>
    public string Name { get; }

    /// <summary>The runtime's --root, where the agent also keeps the console sockets of terminals.</summary>
    public string StateRoot => _stateRoot;

    /// <summary>Creates container <paramref name="id"/> from its bundle; its init process gets <paramref name="stdio"/>.</summary>
    public async Task<int> CreateAsync(string id, string bundle, ProcessStdio stdio, string? consoleSocket, CancellationToken cancellationToken)
    {
        string pidFile = Path.Combine(bundle, "init.pid");
        var args = new List<string> { "create", "--bundle", bundle, "--pid-file", pidFile, "--no-pivot" };
        if (consoleSocket is not null)
        {
            args.AddRange(["--console-socket", consoleSocket]);
        }

        args.Add(id);
        await RunAsync(args, stdio, cancellationToken).ConfigureAwait(false);
        return ReadPid(pidFile);
    }

    /// <summary>Starts a created container's init process.</summary>
    public Task StartAsync(string id, CancellationToken cancellationToken) => RunAsync(["start", id], null, cancellationToken);

    /// <summary>Runs an extra process in the container; returns its pid.</summary>
    public async Task<int> ExecAsync(string id, string processJsonPath, string pidFile, ProcessStdio stdio, string? consoleSocket, CancellationToken cancellationToken)
    {
        var args = new List<string> { "exec", "--detach", "--process", processJsonPath, "--pid-file", pidFile };
        if (consoleSocket is not null)
        {
            args.AddRange(["--console-socket", consoleSocket]);
        }

        args.Add(id);
        await RunAsync(args, stdio, cancellationToken).ConfigureAwait(false);
        return ReadPid(pidFile);
    }

    /// <summary>Sends <paramref name="signal"/> to the container's init, or to all its processes.</summary>
    public Task KillAsync(string id, int signal, bool all, CancellationToken cancellationToken)
    {
        var args = new List<string> { "kill" };
        if (all)
        {
            args.Add("--all");
        }

        args.AddRange([id, signal.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        return RunAsync(args, null, cancellationToken);
    }

    /// <summary>Removes the container from the runtime's state.</summary>
    public Task DeleteAsync(string id, bool force, CancellationToken cancellationToken) =>
        RunAsync(force ? ["delete", "--force", id] : ["delete", id], null, cancellationToken);

    public Task PauseAsync(string id, CancellationToken cancellationToken) => RunAsync(["pause", id], null, cancellationToken);

    public Task ResumeAsync(string id, CancellationToken cancellationToken) => RunAsync(["resume", id], null, cancellationToken);

    /// <summary>Applies an OCI LinuxResources JSON document to the container.</summary>
    public Task UpdateAsync(string id, string resourcesJsonPath, CancellationToken cancellationToken) =>
        RunAsync(["update", "--resources", resourcesJsonPath, id], null, cancellationToken);

    /// <summary>The pids of every process in the container.</summary>
    public async Task<IReadOnlyList<int>> PidsAsync(string id, CancellationToken cancellationToken)
    {
        string output = await RunAsync(["ps", "--format", "json", id], null, cancellationToken).ConfigureAwait(false);
        using JsonDocument doc = JsonDocument.Parse(output);
        return doc.RootElement.ValueKind == JsonValueKind.Array
            ? doc.RootElement.EnumerateArray().Select(e => e.GetInt32()).ToArray()
            : [];
    }

    /// <summary>Runs one runtime command and returns its standard output; a failure carries its standard error.</summary>
    private async Task<string> RunAsync(List<string> args, ProcessStdio? stdio, CancellationToken cancellationToken)
    {
        string log = Path.Combine(_stateRoot, $"{Guid.NewGuid():N}.log");
        string[] argv = [_binary, "--root", _stateRoot, "--log", log, .. args];
        var (errRead, errWrite) = Interop.Pipe();
        var (outRead, outWrite) = stdio is null ? Interop.Pipe() : (-1, -1);
        int pid;
        try
        {
            // For create and exec the runtime's stdio become the container's; its errors then reach us
            // only through --log.
            ProcessStdio io = stdio ?? new ProcessStdio(_devNull, outWrite, errWrite);
            pid = _reaper.Spawn(argv, Environment(), io.Stdin, io.Stdout, io.Stderr);
            AgentTrace.Write($"spawned {Name} {string.Join(' ', args)} as pid {pid}");
        }
        finally
        {
            Libc.CloseQuietly(errWrite);
            Libc.CloseQuietly(outWrite);
        }

        Task<string> output = outRead >= 0 ? ReadAllAsync(outRead) : Task.FromResult(string.Empty);
        Task<string> errors = ReadAllAsync(errRead);
        ProcessExit exit = await _reaper.WaitAsync(pid).WaitAsync(cancellationToken).ConfigureAwait(false);
        _reaper.Forget(pid);
        AgentTrace.Write($"{Name} {args[0]} (pid {pid}) exited with {exit.ExitStatus}");
        string stdout = await output.ConfigureAwait(false);
        string stderr = await errors.ConfigureAwait(false);
        AgentTrace.Write($"{Name} {args[0]} (pid {pid}) output read");
        string logged = File.Exists(log) ? await File.ReadAllTextAsync(log, CancellationToken.None).ConfigureAwait(false) : string.Empty;
        File.Delete(log);
        if (exit.ExitStatus != 0)
        {
            throw new OciRuntimeException(Name, args[0], exit.ExitStatus, (stderr.Trim() + "\n" + logged.Trim()).Trim());
        }

        return stdout;
    }

    private static int ReadPid(string pidFile)
    {
        string text = File.ReadAllText(pidFile).Trim();
        return int.TryParse(text, out int pid) && pid > 0
            ? pid
            : throw new InvalidDataException($"pid file {pidFile} holds \"{text}\", not a pid");
    }

    private static string[] Environment() =>
        ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"];

    private static async Task<string> ReadAllAsync(int fd)
    {
        using var reader = new StreamReader(new NonBlockingFdStream(fd, forReading: true, $"runtime output pipe fd {fd}"), Encoding.UTF8);
        return await reader.ReadToEndAsync().ConfigureAwait(false);
    }
}

/// <summary>An OCI runtime command that failed; the message carries the runtime's own error text.</summary>
internal sealed class OciRuntimeException(string runtime, string command, int exitStatus, string stderr)
    : Exception($"{runtime} {command} failed with status {exitStatus}: {(stderr.Length == 0 ? "(no output)" : stderr)}")
{
    public int ExitStatus { get; } = exitStatus;
}
