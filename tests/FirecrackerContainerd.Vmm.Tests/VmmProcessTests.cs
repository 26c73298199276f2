using FirecrackerContainerd.Vmm.Launch;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Vmm.Tests;

/// <summary>The VMM process's memory of its last output lines, which error messages quote, and its standard input.</summary>
public sealed class VmmProcessTests
{
    [Fact]
    public async Task Recent_output_keeps_the_last_64_lines_of_both_streams_each_cut_to_256_characters()
    {
        using var dir = new TempDir();
        // 100 numbered lines on stdout, then one over-long line and a last one without a newline on stderr.
        string script = "i=1; while [ $i -le 100 ]; do echo line$i; i=$((i+1)); done; " +
                        "sleep 0.2; printf '%0300d\\n' 0 >&2; printf 'no newline' >&2";
        await using var process = await VmmProcess.StartAsync(
            "vm1", new VmmLaunch("/bin/sh", ["-c", script], dir.Path), new ListLogger(), CancellationToken.None);

        await process.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        await process.DisposeAsync();

        IReadOnlyList<string> recent = process.RecentOutput();
        Assert.Equal(64, recent.Count);
        Assert.Equal("line39", recent[0]);
        Assert.Equal("line100", recent[61]);
        Assert.Equal(new string('0', 256), recent[62]);
        Assert.Equal("no newline", recent[63]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Standard_input_is_closed_at_once_unless_held_for_the_child_to_watch(bool hold)
    {
        using var dir = new TempDir();
        // cat ends at end of file: at once when standard input is closed, never while this process holds it open.
        await using var process = await VmmProcess.StartAsync(
            "vm1", new VmmLaunch("/bin/cat", [], dir.Path, SetprivPath: null, HoldStandardInput: hold), new ListLogger(), CancellationToken.None);

        VmExit? exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(hold ? 1 : 30), CancellationToken.None);

        Assert.Equal(hold, exit is null);
    }

    [Fact]
    public async Task A_held_standard_input_reaches_no_other_child()
    {
        // Were the write end inherited by a child started later, that child would keep the pipe open after we died.
        using var dir = new TempDir();
        await using var held = await VmmProcess.StartAsync(
            "vm1", new VmmLaunch("/bin/cat", [], dir.Path, SetprivPath: null, HoldStandardInput: true), new ListLogger(), CancellationToken.None);
        await using var other = await VmmProcess.StartAsync(
            "vm2", new VmmLaunch("/bin/cat", [], dir.Path, SetprivPath: null, HoldStandardInput: true), new ListLogger(), CancellationToken.None);

        string pipe = new FileInfo($"/proc/{held.Pid}/fd/0").LinkTarget!;
        string[] others = [.. Directory.GetFiles($"/proc/{other.Pid}/fd").Select(fd => new FileInfo(fd).LinkTarget ?? string.Empty)];

        Assert.StartsWith("pipe:", pipe, StringComparison.Ordinal);
        Assert.DoesNotContain(pipe, others);
    }
}
