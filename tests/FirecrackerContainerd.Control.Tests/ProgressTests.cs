using FirecrackerContainerd.Fcctl;

namespace FirecrackerContainerd.Control.Tests;

/// <summary>fcctl's progress while a slow call runs, driven by a call that ends when the test says.</summary>
public sealed class ProgressTests
{
    [Fact]
    public async Task Lines_mode_prints_a_line_per_second_until_the_call_ends()
    {
        var call = new TaskCompletionSource();
        var stderr = new EndAfterLines(2, call);

        await Progress.WaitAsync(call.Task, "creating vm vm1", stderr, ProgressMode.Lines, CancellationToken.None);

        Assert.Equal("creating vm vm1 ... 1 s\ncreating vm vm1 ... 2 s\n", stderr.ToString());
    }

    [Fact]
    public async Task Terminal_mode_rewrites_one_line_and_clears_it_at_the_end()
    {
        var call = new TaskCompletionSource();
        var stderr = new EndAfterLines(2, call);

        await Progress.WaitAsync(call.Task, "stopping vm vm1", stderr, ProgressMode.Terminal, CancellationToken.None);

        Assert.Equal("\rstopping vm vm1 ... 1 s\rstopping vm vm1 ... 2 s\r\u001b[K", stderr.ToString());
    }

    [Theory]
    [InlineData(ProgressMode.Lines)]
    [InlineData(ProgressMode.Terminal)]
    [InlineData(ProgressMode.Off)]
    public async Task A_call_that_ends_at_once_shows_nothing(ProgressMode mode)
    {
        using var stderr = new StringWriter();
        await Progress.WaitAsync(Task.CompletedTask, "creating vm vm1", stderr, mode, CancellationToken.None);
        Assert.Equal("", stderr.ToString());
    }

    [Fact]
    public async Task Off_mode_waits_for_the_call_and_writes_nothing()
    {
        var call = new TaskCompletionSource();
        using var stderr = new StringWriter();
        Task waiting = Progress.WaitAsync(call.Task, "creating vm vm1", stderr, ProgressMode.Off, CancellationToken.None);

        await Task.Delay(1500);
        Assert.False(waiting.IsCompleted);
        call.SetException(new IOException("refused"));
        await waiting;
        Assert.Equal("", stderr.ToString());
    }

    /// <summary>A writer that ends the call once it has been given <paramref name="lines"/> progress updates.</summary>
    private sealed class EndAfterLines(int lines, TaskCompletionSource call) : StringWriter
    {
        private int _updates;

        public override Task WriteAsync(string? value) => Count(base.WriteAsync(value), value);

        public override Task WriteLineAsync(string? value) => Count(base.WriteLineAsync(value), value);

        private Task Count(Task written, string? value)
        {
            if (value?.Contains(" s", StringComparison.Ordinal) == true && ++_updates == lines)
            {
                call.SetResult();
            }

            return written;
        }
    }
}
