using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// `ctr run --runtime aws.firecracker` end to end: containerd starts our shim, the shim boots a microVM (QEMU, TCG)
/// and the agent inside runs the container; output, exit codes and stdin travel through vsock.
/// </summary>
[Collection(PrivateContainerd.Name)]
[Trait("Category", "ContainerRun")]
public sealed class ContainerInVmTests(ContainerdFixture containerd, ITestOutputHelper output) : IAsyncLifetime, IDisposable
{
    private const string Namespace = "fcvm";
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(3));

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => containerd.RemoveLeftoversAsync();

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task Ctr_run_prints_the_containers_output_and_the_guest_kernel_release()
    {
        string release = await containerd.RequireGuestAsync(_timeout.Token);
        var run = await RunAsync("vm-hello", null, "sh", "-c", "echo hello from the microvm; uname -r");

        Assert.True(run.ExitCode == 0, Describe(run));
        string[] lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["hello from the microvm", release], lines);
        Assert.NotEqual(File.ReadAllText("/proc/sys/kernel/osrelease").Trim(), release);
        await AssertNothingLeftAsync("vm-hello", "vm-hello");
    }

    [Fact]
    public async Task Ctr_run_exits_with_the_containers_exit_code()
    {
        await containerd.RequireGuestAsync(_timeout.Token);
        var run = await RunAsync("vm-exit3", null, "sh", "-c", "echo bye; exit 3");

        Assert.True(run.ExitCode == 3, Describe(run));
        Assert.Equal("bye\n", run.Stdout);
        await AssertNothingLeftAsync("vm-exit3", "vm-exit3");
    }

    [Fact]
    public async Task Ctr_run_applies_the_images_working_dir_and_env_and_keeps_stdout_and_stderr_apart()
    {
        await containerd.RequireGuestAsync(_timeout.Token);
        var run = await RunAsync("vm-image-config", null, "sh", "-c",
            $"pwd; echo \"${BusyboxImage.EnvVariable}\"; echo to stderr >&2; echo to stdout; echo again to stderr >&2");

        Assert.True(run.ExitCode == 0, Describe(run));
        Assert.Equal($"{BusyboxImage.WorkingDir}\n{BusyboxImage.EnvValue}\nto stdout\n", run.Stdout);
        Assert.Equal("to stderr\nagain to stderr\n", run.Stderr);
        await AssertNothingLeftAsync("vm-image-config", "vm-image-config");
    }

    [Fact]
    public async Task Ctr_run_of_a_spec_the_guest_cannot_honour_fails_naming_each_field_and_leaves_nothing()
    {
        await containerd.RequireGuestAsync(_timeout.Token);
        const string id = "vm-refused";
        containerd.NoteTaskId(Namespace, id);
        await containerd.ImportBusyboxImageAsync(Namespace);

        // A host network namespace to join and a host directory to bind: neither exists for a container inside the VM.
        var run = await containerd.CtrWithInputAsync(Namespace, null,
            ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native",
             "--with-ns", "network:/var/run/netns/fctest-host-netns",
             "--mount", "type=bind,src=/srv/fctest-host-only,dst=/data,options=rbind:ro",
             BusyboxImage.Name, id, "true"]);

        Assert.True(run.ExitCode != 0, Describe(run));
        Assert.Contains("asks for what the guest cannot honour", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("path = \"/var/run/netns/fctest-host-netns\": no such namespace inside the VM", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("(bind /srv/fctest-host-only -> /data): its source does not exist inside the VM", run.Stderr, StringComparison.Ordinal);
        await containerd.RemoveContainerAsync(Namespace, id);
        await AssertNothingLeftAsync(id, id);
    }

    [Fact]
    public async Task Ctr_run_pipes_stdin_into_the_container_until_its_end()
    {
        await containerd.RequireGuestAsync(_timeout.Token);
        byte[] input = Encoding.UTF8.GetBytes("line one\nline two\n");
        var run = await RunAsync("vm-cat", input, "sh", "-c", "while IFS= read -r line; do echo \"$line\"; done");

        Assert.True(run.ExitCode == 0, Describe(run));
        Assert.Equal("line one\nline two\n", run.Stdout);
        await AssertNothingLeftAsync("vm-cat", "vm-cat");
    }

    [Fact]
    public async Task Ctr_run_delivers_100_MiB_of_stdout_with_its_checksum_intact()
    {
        await containerd.RequireGuestAsync(_timeout.Token);
        const int size = 100 * 1024 * 1024;

        // The guest hashes what it writes (through a FIFO beside stdout) and reports the hash on stderr; tee's status is
        // the container's, so stdout closed early in the guest fails the run instead of hiding behind `wait`.
        var run = await RunAsync("vm-bulk", null, "sh", "-c",
            $"mkfifo /dev/shm/copy || exit 9; sha256sum < /dev/shm/copy >&2 & head -c {size} /dev/urandom | tee /dev/shm/copy; status=$?; wait; exit $status");

        Assert.True(run.ExitCode == 0, Describe(run));
        // A short count says where the bytes went missing only with the runtime's own account of the connection.
        Assert.True(run.StdoutBytes.Length == size, $"{run.StdoutBytes.Length} of {size} bytes arrived\n{Describe(run)}");
        string guestHash = run.Stderr.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? string.Empty;
        Assert.Equal(guestHash, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(run.StdoutBytes)));
        await AssertNothingLeftAsync("vm-bulk", "vm-bulk");
    }

    [Fact]
    public async Task Ctr_run_with_a_terminal_gets_a_pty_sized_like_ctrs_own_terminal_and_reads_what_is_typed()
    {
        await containerd.RequireGuestAsync(_timeout.Token);
        await containerd.ImportBusyboxImageAsync(Namespace);
        const string id = "vm-tty";
        containerd.NoteTaskId(Namespace, id);

        // ctr -t needs a terminal of its own: script gives it one, sized 45x123 before ctr starts, and
        // types the input into it. ctr sizes the container's pty only after Start (with runc too), so the
        // container waits (at most 10 s) for a size before printing it. busybox's stty size on a pty of 0 rows
        // prints nothing but an error with a stale errno ("standard input: No child processes") and exits 0,
        // so the wait is for its output, not its status.
        string ctr = $"{ContainerdFixture.CtrBinary} --address {containerd.Address} -n {Namespace} run -t --rm --runtime aws.firecracker " +
            $"--snapshotter native {BusyboxImage.Name} {id} sh -c 'tty; i=0; until size=$(stty size 2>/dev/null); [ -n \"$size\" ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done; " +
            "echo \"${size:-no size}\"; read line; echo \"got $line\"'";
        CommandResult run = await ProcessRunner.RunAsync(
            "script", ["-qec", $"stty rows 45 cols 123; {ctr}", "/dev/null"], TimeSpan.FromSeconds(90), stdin: Encoding.UTF8.GetBytes("typed text\n"));

        Assert.True(run.ExitCode == 0, Describe(run));
        string[] lines = run.Stdout.Replace("\r", "", StringComparison.Ordinal).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.StartsWith("/dev/pts/", StringComparison.Ordinal));
        Assert.Contains("45 123", lines);
        Assert.Contains("got typed text", lines);
        await AssertNothingLeftAsync(id, id);
    }

    [Fact]
    public async Task Ctr_events_shows_create_start_and_an_OOM_kill_before_the_exit_it_caused()
    {
        await containerd.RequireGuestAsync(_timeout.Token);
        await containerd.ImportBusyboxImageAsync(Namespace);
        const string id = "vm-oom";
        using var events = new CtrEvents(containerd, Namespace);
        CommandResult run;
        string[] lines;
        try
        {
            // dd's one 64 MiB buffer, filled by the kernel, goes past the 32 MiB limit, so the guest kernel's OOM
            // killer ends it. Anonymous memory filled in one read: nothing to reclaim, no thrashing before the kill
            // (a shell growing a string did thrash for minutes under TCG).
            containerd.NoteTaskId(Namespace, id);
            run = await containerd.CtrWithInputAsync(Namespace, null,
                ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", "--memory-limit", "33554432",
                 BusyboxImage.Name, id, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message}\n{ShimLog()}");
            throw;
        }
        finally
        {
            lines = await events.StopAsync();
        }

        string log = string.Join('\n', lines);
        Assert.True(run.ExitCode == 137, Describe(run));
        Assert.DoesNotContain("records out", run.Stderr, StringComparison.Ordinal);
        int create = Array.FindIndex(lines, l => l.Contains("/tasks/create", StringComparison.Ordinal) && l.Contains(id, StringComparison.Ordinal));
        int start = Array.FindIndex(lines, l => l.Contains("/tasks/start", StringComparison.Ordinal) && l.Contains(id, StringComparison.Ordinal));
        Assert.True(create >= 0 && start > create, $"expected /tasks/create then /tasks/start for {id} in ctr events:\n{log}");
        int oom = Array.FindIndex(lines, l => l.Contains("/tasks/oom", StringComparison.Ordinal) && l.Contains(id, StringComparison.Ordinal));
        int exit = Array.FindIndex(lines, l => l.Contains("/tasks/exit", StringComparison.Ordinal) && l.Contains(id, StringComparison.Ordinal));
        Assert.True(oom >= 0 && exit > oom, $"expected /tasks/oom then /tasks/exit for {id} in ctr events:\n{log}\n{ShimLog()}");
        await AssertNothingLeftAsync(id, id);
    }

    private async Task<CommandResult> RunAsync(string id, byte[]? stdin, params string[] command)
    {
        containerd.NoteTaskId(Namespace, id);
        await containerd.ImportBusyboxImageAsync(Namespace);
        var clock = Stopwatch.StartNew();
        CommandResult run;
        try
        {
            run = await containerd.CtrWithInputAsync(
                Namespace, stdin, ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", BusyboxImage.Name, id, .. command]);
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message}\n{ShimLog()}");
            throw;
        }

        output.WriteLine($"ctr run {id}: exit {run.ExitCode} after {clock.Elapsed.TotalSeconds:F1} s");
        return run;
    }

    private Task AssertNothingLeftAsync(string id, string vmId) => containerd.AssertNothingLeftAsync(Namespace, vmId, id);

    private string Describe(CommandResult run) => containerd.Describe(run);

    private string ShimLog() => containerd.ShimLog();
}
