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
public sealed class ContainerInVmTests(ContainerdFixture containerd, ITestOutputHelper output) : IDisposable
{
    private const string Namespace = "fcvm";
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(3));

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
    public async Task Ctr_run_pipes_stdin_into_the_container_until_its_end()
    {
        await containerd.RequireGuestAsync(_timeout.Token);
        byte[] input = Encoding.UTF8.GetBytes("line one\nline two\n");
        var run = await RunAsync("vm-cat", input, "sh", "-c", "while IFS= read -r line; do echo \"$line\"; done");

        Assert.True(run.ExitCode == 0, Describe(run));
        Assert.Equal("line one\nline two\n", run.Stdout);
        await AssertNothingLeftAsync("vm-cat", "vm-cat");
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

    private async Task AssertNothingLeftAsync(string id, string vmId)
    {
        string vmDir = Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + vmId);
        Assert.True(await Eventually.HoldsAsync(() => containerd.ShimProcesses().Count == 0), $"a shim process outlived its task\n{containerd.ContainerdLog}");
        Assert.True(await Eventually.HoldsAsync(() => ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir).Count == 0), "a QEMU outlived its shim");
        Assert.False(File.Exists(containerd.ShimSocketPath(Namespace, id)), "the shim socket was left under /run/containerd/s");
        Assert.True(!Directory.Exists(vmDir) || !Directory.EnumerateFileSystemEntries(vmDir).Any(),
            $"the VM directory {vmDir} was left with: {string.Join(", ", Directory.Exists(vmDir) ? Directory.EnumerateFileSystemEntries(vmDir) : [])}\n{ShimLog()}");
        Assert.Empty(ContainerdFixture.MountsBelow(containerd.ShimBaseDirectory));
        Assert.Empty(ContainerdFixture.MountsBelow(containerd.ShimTempDirectory));
        Assert.Empty(Directory.EnumerateDirectories(containerd.ShimTempDirectory, "fc-rootfs-*"));
    }

    private string Describe(CommandResult run) =>
        $"ctr exited {run.ExitCode}\nstdout:\n{run.Stdout}\nstderr:\n{run.Stderr}\nshim invocations:\n{containerd.InvocationLog}\ncontainerd log (tail):\n{Tail(containerd.ContainerdLog)}";

    private string ShimLog() =>
        string.Join('\n', containerd.ContainerdLog.Split('\n').Where(l => l.Contains("runtime=aws.firecracker", StringComparison.Ordinal) || l.Contains("level=error", StringComparison.Ordinal) || l.Contains("level=warn", StringComparison.Ordinal)));

    private static string Tail(string text) => text.Length > 6000 ? text[^6000..] : text;
}
