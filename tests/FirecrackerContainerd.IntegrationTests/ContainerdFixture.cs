using System.Diagnostics;
using System.Text;
using FirecrackerContainerd.Shim.Addressing;
using FirecrackerContainerd.Shim.Lifecycle;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// A private containerd (Debian's /usr/bin/containerd) with its own root, state and sockets under a temp directory,
/// CRI disabled, debug logging, and our shim first on its PATH. Stopping it stops every process it started and
/// removes everything it left, so tests leave nothing behind.
/// </summary>
public sealed class ContainerdFixture : IAsyncLifetime
{
    /// <summary>Environment variable that points the tests at another containerd binary (e.g. 1.7 or 2.x unpacked with dpkg -x).</summary>
    public const string ContainerdBinaryVariable = "FIRECRACKER_CONTAINERD_TEST_CONTAINERD";

    /// <summary>Environment variable that points the tests at the matching ctr binary.</summary>
    public const string CtrBinaryVariable = "FIRECRACKER_CONTAINERD_TEST_CTR";

    /// <summary>The containerd binary the tests run against: Debian's unless overridden.</summary>
    public static string ContainerdBinary { get; } = Environment.GetEnvironmentVariable(ContainerdBinaryVariable) is { Length: > 0 } c ? c : "/usr/bin/containerd";

    /// <summary>The ctr binary the tests drive containerd with: Debian's unless overridden.</summary>
    public static string CtrBinary { get; } = Environment.GetEnvironmentVariable(CtrBinaryVariable) is { Length: > 0 } c ? c : "/usr/bin/ctr";

    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan GuestPreparationTimeout = TimeSpan.FromMinutes(20);
    private readonly HashSet<(string Namespace, string Id)> _usedIds = [];
    private readonly List<(string Namespace, string Id)> _notCleared = [];
    private ContainerdProcess? _containerd;
    private readonly HashSet<string> _imageImportedInto = [];
    private readonly IReadOnlyDictionary<string, string> _environment;
    private Task<string>? _guest;

    /// <summary>The containerd the tests of the collection share.</summary>
    public ContainerdFixture()
        : this(new Dictionary<string, string>())
    {
    }

    /// <summary>
    /// A containerd of its own for a test that needs <paramref name="environment"/> in containerd's environment, which
    /// containerd passes on to every shim it starts. The test initialises and disposes it itself.
    /// </summary>
    internal ContainerdFixture(IReadOnlyDictionary<string, string> environment) => _environment = environment;

    /// <summary>The version of the containerd under test, as <c>containerd --version</c> prints it (e.g. 1.7.24~ds1).</summary>
    public string Version { get; private set; } = string.Empty;

    /// <summary>The private directory holding config, root, state, sockets and logs.</summary>
    public string Directory { get; private set; } = string.Empty;

    /// <summary>containerd's gRPC socket.</summary>
    public string Address => Path.Combine(Directory, "c.sock");

    /// <summary>containerd's ttrpc socket (the gRPC address plus ".ttrpc").</summary>
    public string TtrpcAddress => Address + ".ttrpc";

    /// <summary>containerd's state directory.</summary>
    public string StateDirectory => Path.Combine(Directory, "state");

    /// <summary>Where scripts/install-deps unpacks mkfs.erofs 1.7+ for containerd 2.1's erofs differ (Debian 12's is too old).</summary>
    public static string ErofsUtilsDirectory { get; } =
        Path.Combine(Environment.GetEnvironmentVariable("FC_IMAGE_CACHE") is { Length: > 0 } cache ? cache : "/var/cache/firecracker-containerd", "erofs-utils", "trixie", "bin");

    /// <summary>The directory put first on containerd's PATH, holding our shim.</summary>
    public string ShimDirectory => Path.Combine(Directory, "bin");

    /// <summary>The file our shim appends one line to per invocation.</summary>
    public string InvocationLogPath => Path.Combine(Directory, "shim-invocations.log");

    /// <summary>Everything containerd wrote to stdout and stderr so far (including our shim's log FIFO lines).</summary>
    public string ContainerdLog => _containerd?.Log ?? string.Empty;

    /// <summary>The runtime configuration file containerd's shims read (written by <see cref="RequireGuestAsync"/>).</summary>
    public string RuntimeConfigPath => Path.Combine(Directory, "firecracker-runtime.json");

    /// <summary>Where the shims create VM directories.</summary>
    public string ShimBaseDirectory => Path.Combine(Directory, "vms");

    /// <summary>The temporary directory of containerd and its shims (rootfs views are mounted below it).</summary>
    public string ShimTempDirectory => Path.Combine(Directory, "tmp");

    /// <summary>Lines our shim wrote to the invocation log so far.</summary>
    public string InvocationLog => File.Exists(InvocationLogPath) ? File.ReadAllText(InvocationLogPath) : string.Empty;

    /// <inheritdoc/>
    public async Task InitializeAsync()
    {
        foreach (string binary in new[] { ContainerdBinary, CtrBinary })
        {
            if (!File.Exists(binary))
            {
                throw new InvalidOperationException(
                    $"{binary} is missing: these tests run against the real containerd; install it with `apt-get install containerd` " +
                    $"(or set {ContainerdBinaryVariable} and {CtrBinaryVariable})");
            }
        }

        if (Interop.GetEffectiveUserId() != 0)
        {
            throw new InvalidOperationException("these tests start a private containerd and must run as root");
        }

        // Short path: containerd's sockets live here and Unix socket paths are limited to 108 bytes.
        Directory = System.IO.Directory.CreateTempSubdirectory("fcctr-").FullName;
        System.IO.Directory.CreateDirectory(ShimDirectory);
        System.IO.Directory.CreateDirectory(ShimTempDirectory);
        // The native shim, as scripts/lib/publish ships it.
        string shim = await NativeBinary.ShimAsync(CancellationToken.None);
        File.CreateSymbolicLink(Path.Combine(ShimDirectory, "containerd-shim-aws-firecracker"), shim);
        Version = await ContainerdVersionAsync();
        CommandResult config = await ProcessRunner.RunAsync(
            Path.Combine(TestSupport.GuestImage.RepoRoot(), "scripts", "lib", "containerd-config"),
            [ContainerdBinary, Directory, Address, "debug"],
            CommandTimeout);
        if (config.ExitCode != 0)
        {
            throw new InvalidOperationException($"scripts/lib/containerd-config failed for {ContainerdBinary}: {config.Output}");
        }

        await File.WriteAllTextAsync(Path.Combine(Directory, "config.toml"), config.Stdout);
        await StartContainerdAsync();
    }

    /// <summary>
    /// Stops containerd with SIGTERM and starts it again on the same root, state and sockets: the shims it
    /// started keep running and must be found again through their address files.
    /// </summary>
    public async Task RestartAsync()
    {
        await StopContainerdAsync();
        _containerd?.Note("---- containerd restarted by the test ----");
        await StartContainerdAsync();
    }

    /// <summary>Runs <c>ctr --address ... -n ns args</c>.</summary>
    public Task<CommandResult> CtrAsync(string ns, params string[] args) => CtrAsync(ns, CommandTimeout, args);

    /// <summary>Runs <c>ctr --address ... -n ns args</c>, bounded by <paramref name="timeout"/> (a big image's import or run).</summary>
    public Task<CommandResult> CtrAsync(string ns, TimeSpan timeout, params string[] args) =>
        ProcessRunner.RunAsync(CtrBinary, ["--address", Address, "-n", ns, .. args], timeout);

    /// <summary>Runs ctr with <paramref name="stdin"/> as its standard input and a bound long enough for a VM boot.</summary>
    public Task<CommandResult> CtrWithInputAsync(string ns, byte[]? stdin, params string[] args) =>
        ProcessRunner.RunAsync(CtrBinary, ["--address", Address, "-n", ns, .. args], TimeSpan.FromSeconds(90), stdin: stdin);

    /// <summary>
    /// Publishes the agent, builds the guest image with it (both cached) and writes the runtime configuration that
    /// points the shims at it (QEMU, 2 vCPUs, 512 MiB); returns the guest's kernel release from the image manifest.
    /// </summary>
    public Task<string> RequireGuestAsync(CancellationToken cancellationToken)
    {
        // Prepared once for every test, under its own bound: a test that stops waiting (its deadline passed while
        // another process held the image lock) does not cancel the preparation the next test waits for.
        lock (_imageImportedInto)
        {
            _guest ??= PrepareGuestAsync();
        }

        return _guest.WaitAsync(cancellationToken);
    }

    private async Task<string> PrepareGuestAsync()
    {
        using var bound = new CancellationTokenSource(GuestPreparationTimeout);
        return await GuestRuntime.WriteConfigAsync(RuntimeConfigPath, ShimBaseDirectory, bound.Token);
    }

    /// <summary>Mount points below <paramref name="directory"/> in this mount namespace (the shims share it).</summary>
    public static IReadOnlyList<string> MountsBelow(string directory) =>
        File.ReadLines("/proc/self/mountinfo")
            .Select(line => line.Split(' ')[4].Replace("\\040", " ", StringComparison.Ordinal))
            .Where(mountPoint => mountPoint == directory || mountPoint.StartsWith(directory + "/", StringComparison.Ordinal))
            .ToList();

    /// <summary>Imports the busybox test image into <paramref name="ns"/> once per namespace, unpacked for the native snapshotter.</summary>
    public Task ImportBusyboxImageAsync(string ns) => ImportBusyboxImageAsync(ns, "native");

    /// <summary>Imports the busybox test image into <paramref name="ns"/> once per namespace and snapshotter, unpacked for <paramref name="snapshotter"/>.</summary>
    public async Task ImportBusyboxImageAsync(string ns, string snapshotter)
    {
        string key = $"{ns}/{snapshotter}";
        if (_imageImportedInto.Contains(key))
        {
            return;
        }

        string tar = Path.Combine(Directory, "busybox-oci.tar");
        if (!File.Exists(tar))
        {
            BusyboxImage.Write(tar);
        }

        var result = await CtrAsync(ns, "image", "import", "--snapshotter", snapshotter, tar);
        Assert.True(result.ExitCode == 0, $"ctr image import --snapshotter {snapshotter} failed: {result.Output}");
        _imageImportedInto.Add(key);
    }

    /// <summary>Remembers that a test used <paramref name="id"/>, so teardown can check and clear its shim socket.</summary>
    public void NoteTaskId(string ns, string id)
    {
        lock (_usedIds)
        {
            _usedIds.Add((ns, id));
            _notCleared.Add((ns, id));
        }
    }

    /// <summary>
    /// Removes the tasks and containers noted since the last call, whatever state a failed test left them in, and ends
    /// their shims; so that one failed test does not spill into the next. Tests call it when they end.
    /// </summary>
    public async Task RemoveLeftoversAsync()
    {
        (string Namespace, string Id)[] noted;
        lock (_usedIds)
        {
            noted = [.. _notCleared];
            _notCleared.Clear();
        }

        foreach (var (ns, id) in noted)
        {
            await RemoveContainerAsync(ns, id);
        }

        string[] ids = [.. noted.Select(n => n.Id)];
        if (!await Eventually.HoldsAsync(() => ShimProcesses(ids).Count == 0))
        {
            await KillAsync(ShimProcesses(ids));
        }
    }

    /// <summary>The filesystem path of our shim's socket for a task of this containerd.</summary>
    public string ShimSocketPath(string ns, string id) =>
        ShimSocketAddress.ToPath(ShimSocketAddress.For(Address, ns, id));

    /// <summary>The STATUS column of <c>ctr task ls</c> for <paramref name="id"/> (RUNNING, PAUSED, STOPPED...), or null when not listed.</summary>
    public async Task<string?> TaskStatusAsync(string ns, string id)
    {
        CommandResult list = await CtrAsync(ns, "task", "ls");
        Assert.True(list.ExitCode == 0, $"ctr task ls failed: {list.Output}");
        return list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(columns => columns.Length >= 3 && columns[0] == id)
            .Select(columns => columns[2])
            .FirstOrDefault();
    }

    /// <summary>Waits (bounded) until the task's status is <paramref name="status"/>; false if it never is.</summary>
    public Task<bool> TaskReachesAsync(string ns, string id, string status, TimeSpan within) =>
        TaskReachesAsync(ns, id, s => s == status, within);

    /// <summary>Waits (bounded) until the task's status (null: not listed) satisfies <paramref name="reached"/>; false if it never does.</summary>
    public async Task<bool> TaskReachesAsync(string ns, string id, Func<string?, bool> reached, TimeSpan within)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < within)
        {
            if (reached(await TaskStatusAsync(ns, id)))
            {
                return true;
            }

            await Task.Delay(250);
        }

        return false;
    }

    /// <summary>Best-effort removal of a test's task and container, whatever state a failed test left them in.</summary>
    public async Task RemoveContainerAsync(string ns, string id)
    {
        if (await TaskStatusAsync(ns, id) is { } status && status != "STOPPED")
        {
            await CtrAsync(ns, "task", "kill", "--signal", "SIGKILL", id);
            await TaskReachesAsync(ns, id, "STOPPED", TimeSpan.FromSeconds(30));
        }

        await CtrAsync(ns, "task", "rm", "--force", id);
        await CtrAsync(ns, "container", "rm", id);
    }

    /// <summary>
    /// Asserts that the VM <paramref name="vmId"/> left nothing: no shim, no QEMU, no shim socket for
    /// <paramref name="taskIds"/>, an empty VM directory, no mounts and no rootfs staging directories.
    /// </summary>
    public async Task AssertNothingLeftAsync(string ns, string vmId, params string[] taskIds)
    {
        string vmDir = Path.Combine(ShimBaseDirectory, ns + "#" + vmId);
        string[] ids = [vmId, .. taskIds];
        Assert.True(await Eventually.HoldsAsync(() => ShimProcesses(ids).Count == 0),
            $"a shim process outlived its tasks: {string.Join("; ", ShimProcesses(ids).Select(pid => $"{pid}: {ProcessRunner.CommandLineOf(pid) ?? "(gone)"}"))}\nshim invocations:\n{InvocationLog}\n{ShimLog()}");
        Assert.True(await Eventually.HoldsAsync(() => ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir).Count == 0), "a QEMU outlived its shim");
        // A shim that was killed leaves its socket to the delete verb, which containerd runs in its own cleanup of the
        // dead shim, not necessarily before the task reads as stopped.
        foreach (string id in taskIds.DefaultIfEmpty(vmId))
        {
            Assert.True(await Eventually.HoldsAsync(() => !File.Exists(ShimSocketPath(ns, id))),
                $"the shim socket of {id} was left under /run/containerd/s\nshim invocations:\n{InvocationLog}");
        }

        Assert.True(!System.IO.Directory.Exists(vmDir) || !System.IO.Directory.EnumerateFileSystemEntries(vmDir).Any(),
            $"the VM directory {vmDir} was left with: {string.Join(", ", System.IO.Directory.Exists(vmDir) ? System.IO.Directory.EnumerateFileSystemEntries(vmDir) : [])}\n{ShimLog()}");
        Assert.Empty(MountsBelow(ShimBaseDirectory));
        Assert.Empty(MountsBelow(ShimTempDirectory));
        Assert.Empty(System.IO.Directory.EnumerateDirectories(ShimTempDirectory, "fc-rootfs-*"));

        // The VM ran jailed (the runtime configuration's default): its jail directory and cgroups go with it.
        string vmName = ns + "#" + vmId;
        string jail = Path.Combine(FirecrackerContainerd.Vmm.Jail.JailSettings.DefaultChrootBase, vmName);
        Assert.True(await Eventually.HoldsAsync(() => !System.IO.Directory.Exists(jail)), $"the jail directory {jail} was left\n{ShimLog()}");
        string[] cgroups = [.. new[] { "memory", "cpu", "pids", string.Empty }
            .Select(controller => Path.Combine("/sys/fs/cgroup", controller, FirecrackerContainerd.Vmm.Jail.JailSettings.DefaultCgroupParent, vmName))];
        Assert.True(await Eventually.HoldsAsync(() => !cgroups.Any(System.IO.Directory.Exists)),
            $"the VM's cgroup was left: {string.Join(", ", cgroups.Where(System.IO.Directory.Exists))}\n{ShimLog()}");
    }

    /// <summary>containerd's log lines about our runtime, and its warnings and errors.</summary>
    public string ShimLog() =>
        string.Join('\n', ContainerdLog.Split('\n').Where(l =>
            l.Contains("runtime=aws.firecracker", StringComparison.Ordinal) || l.Contains("level=error", StringComparison.Ordinal) ||
            l.Contains("level=warn", StringComparison.Ordinal) || l.Contains("containerd restarted", StringComparison.Ordinal)));

    /// <summary>A failed command with everything needed to see why: its output, the shim invocations and containerd's log tail.</summary>
    public string Describe(CommandResult run)
    {
        string log = ContainerdLog;
        return $"containerd {Version}: exit {run.ExitCode}\nstdout:\n{(run.Stdout.Length > 2000 ? run.Stdout[..2000] + "..." : run.Stdout)}\nstderr:\n{run.Stderr}\n" +
            $"shim invocations:\n{InvocationLog}\ncontainerd log (tail):\n{(log.Length > 6000 ? log[^6000..] : log)}";
    }

    /// <summary>
    /// Pids of our shim processes serving this containerd; with <paramref name="ids"/>, only those started for one of
    /// those task or VM ids (their <c>-id</c>), so that a shim another test left does not count.
    /// </summary>
    public IReadOnlyList<int> ShimProcesses(params string[] ids) =>
        ProcessRunner.FindProcesses("containerd-shim-aws-firecracker", Address)
            .Where(pid => ProcessRunner.ArgumentsOf(pid) is { Length: > 0 } args &&
                Path.GetFileName(args[0]) == "containerd-shim-aws-firecracker" && // not a process that merely names it
                (ids.Length == 0 || ids.Contains(IdArgument(args))))
            .ToList();

    private static string? IdArgument(string[] args)
    {
        int at = Array.IndexOf(args, "-id");
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }

    private static async Task KillAsync(IEnumerable<int> pids)
    {
        foreach (int pid in pids)
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                process.Kill();
                await process.WaitForExitAsync();
            }
            catch (ArgumentException)
            {
                // Already gone.
            }
        }
    }

    /// <inheritdoc/>
    public async Task DisposeAsync()
    {
        await StopContainerdAsync();

        // Shims are not containerd's children once they daemonise: stop any of ours that outlived it.
        await KillAsync(ShimProcesses());

        // A QEMU that outlived its shim would hold the VM directory: stop it before deleting.
        await KillAsync(ProcessRunner.FindProcesses("qemu-system-x86_64", Directory));

        foreach (var (ns, id) in _usedIds)
        {
            ShimSocket.Remove(ShimSocketPath(ns, id));
        }

        if (Directory.Length > 0 && System.IO.Directory.Exists(Directory))
        {
            // containerd 2.1's erofs snapshotter mounts each layer file on the host and leaves it mounted while the
            // image lives, even after containerd stops.
            foreach (string mountPoint in MountsBelow(Directory).OrderByDescending(m => m.Length))
            {
                await ProcessRunner.RunAsync("umount", ["--lazy", mountPoint], CommandTimeout);
            }

            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }

    private static async Task<string> ContainerdVersionAsync()
    {
        CommandResult version = await ProcessRunner.RunAsync(ContainerdBinary, ["--version"], CommandTimeout);
        string[] words = version.Stdout.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return version.ExitCode == 0 && words.Length >= 3
            ? words[2]
            : throw new InvalidOperationException($"{ContainerdBinary} --version failed: {version.Output}");
    }

    private Task StartContainerdAsync()
    {
        if (_containerd is null)
        {
            var environment = new Dictionary<string, string>
            {
                // Our shim first, then this containerd's own directory, so that its runc shim (not another version's) serves runc tasks.
                // Last, the mkfs.erofs scripts/install-deps unpacks, which containerd 2.1's erofs differ runs (scripts/lib/containerd-config).
                ["PATH"] = string.Join(':', ShimDirectory, Path.GetDirectoryName(ContainerdBinary), Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin", ErofsUtilsDirectory),
                [FirecrackerContainerd.Shim.Lifecycle.InvocationLog.EnvironmentVariable] = InvocationLogPath,
                ["FIRECRACKER_CONTAINERD_RUNTIME_CONFIG"] = RuntimeConfigPath,
                ["TMPDIR"] = ShimTempDirectory,
            };
            foreach (var (name, value) in _environment)
            {
                environment[name] = value;
            }

            _containerd = new ContainerdProcess(ContainerdBinary, CtrBinary, Path.Combine(Directory, "config.toml"), Address, Directory, environment);
        }

        return _containerd.StartAsync();
    }

    private Task StopContainerdAsync() => _containerd?.StopAsync() ?? Task.CompletedTask;
}
