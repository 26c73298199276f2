using System.Diagnostics;
using System.Text;
using FirecrackerContainerd.Native;
using FirecrackerContainerd.Vmm.Firecracker.Telemetry;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace FirecrackerContainerd.Vmm.Tests;

/// <summary>The FIFO readers drain Firecracker's log and metrics FIFOs without ever making the writer wait.</summary>
/// <remarks>
/// The writer behaves like Firecracker: it opens the FIFO O_WRONLY|O_NONBLOCK and writes whole lines
/// (1 KiB, below PIPE_BUF, so each write is atomic). Where Firecracker would drop a line on EAGAIN,
/// the test writer instead waits for room with poll(POLLOUT) bounded by <see cref="StallLimitMs"/>,
/// and counts how often and how long it had to. "Never blocks" is then asserted as: all 64 MiB were
/// written and no single wait for room reached the limit, even though the consumer is slow. The
/// control test shows the same writer does stall on a FIFO nobody drains, so the measurement can fail.
/// </remarks>
public class FifoReaderTests(ITestOutputHelper output)
{
    private const int StallLimitMs = 5000;
    private const int LineBytes = 1024;
    private const long FloodBytes = 64L * 1024 * 1024;

    [Fact]
    public async Task A_64_MiB_flood_never_stalls_the_writer_even_with_a_slow_sink()
    {
        using var dir = new TempDir();
        var fifo = dir.Combine("fc-logs.fifo");
        long consumed = 0;
        var reader = FifoLineReader.Start(fifo, async (line, ct) =>
        {
            Interlocked.Increment(ref consumed);
            await Task.Delay(1, ct); // a sink far slower than the writer
        });
        FloodResult result;
        try
        {
            result = await Task.Factory.StartNew(() => Flood(fifo, FloodBytes), TaskCreationOptions.LongRunning);
            var deadline = Stopwatch.StartNew();
            while (reader.BytesRead < FloodBytes && deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(10);
            }
        }
        finally
        {
            await reader.DisposeAsync();
        }

        output.WriteLine($"wrote {result.BytesWritten} bytes in {result.Elapsed.TotalMilliseconds:F0} ms; EAGAIN {result.WouldBlock} times, longest wait for room {result.LongestWaitMs:F1} ms");
        output.WriteLine($"reader: {reader.LinesRead} lines read, {reader.LinesDropped} dropped for the slow sink, {Interlocked.Read(ref consumed)} consumed");
        Assert.Null(result.StalledAfterBytes);
        Assert.Equal(FloodBytes, result.BytesWritten);
        Assert.Equal(FloodBytes, reader.BytesRead);
        Assert.Equal(FloodBytes / LineBytes, reader.LinesRead);
        Assert.True(reader.LinesDropped > 0, "a sink this slow cannot have consumed every line; the queue must have dropped some");
        Assert.Equal(reader.LinesRead, reader.LinesDropped + Interlocked.Read(ref consumed));
    }

    [Fact]
    public void Control_the_same_writer_stalls_on_a_fifo_nobody_drains()
    {
        using var dir = new TempDir();
        var fifo = dir.Combine("undrained.fifo");
        FirecrackerContainerd.Core.Fifo.Create(fifo, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var holder = Interop.Open(fifo, Libc.O_RDWR | Libc.O_NONBLOCK); // keeps a reader end open, never reads
        try
        {
            var result = Flood(fifo, 16L * 1024 * 1024, stallLimitMs: 200);

            Assert.NotNull(result.StalledAfterBytes);
            Assert.True(result.StalledAfterBytes <= 1024 * 1024, $"stalled only after {result.StalledAfterBytes} bytes");
        }
        finally
        {
            Libc.CloseQuietly(holder);
        }
    }

    [Fact]
    public async Task Overlong_lines_are_cut_and_the_next_line_arrives_intact()
    {
        using var dir = new TempDir();
        var fifo = dir.Combine("fc-logs.fifo");
        var lines = new List<string>();
        var reader = FifoLineReader.Start(fifo, (line, _) =>
        {
            lock (lines)
            {
                lines.Add(Encoding.UTF8.GetString(line.Span));
            }

            return ValueTask.CompletedTask;
        });
        await using (reader)
        {
            var payload = new string('x', 3 * FifoLineReader.MaxLineBytes) + "\nsecond line\n";
            await WriteAllAsync(fifo, payload);
            await WaitForAsync(() => { lock (lines) { return lines.Count >= 2; } });
        }

        Assert.Equal(2, lines.Count);
        Assert.Equal(FifoLineReader.MaxLineBytes, lines[0].Length);
        Assert.Equal("second line", lines[1]);
        Assert.Equal(1, reader.TruncatedLines);
    }

    [Fact]
    public async Task A_failing_sink_does_not_stop_the_draining()
    {
        using var dir = new TempDir();
        var fifo = dir.Combine("fc-logs.fifo");
        var seen = new List<string>();
        var reader = FifoLineReader.Start(fifo, (line, _) =>
        {
            var text = Encoding.UTF8.GetString(line.Span);
            lock (seen)
            {
                seen.Add(text);
            }

            return text == "bad" ? throw new InvalidOperationException("sink broke") : ValueTask.CompletedTask;
        });
        await using (reader)
        {
            await WriteAllAsync(fifo, "one\nbad\ntwo\n");
            await WaitForAsync(() => { lock (seen) { return seen.Count >= 3; } });
        }

        Assert.Equal(["one", "bad", "two"], seen);
        Assert.Equal(1, reader.ConsumerErrors);
    }

    [Fact]
    public async Task Metrics_lines_are_parsed_and_malformed_ones_counted_without_stopping_the_reader()
    {
        using var dir = new TempDir();
        var fifo = dir.Combine("fc-metrics.fifo");
        var logger = new ListLogger();
        var reader = FirecrackerMetricsReader.Start(fifo, "vm1", logger);
        await using (reader)
        {
            await WriteAllAsync(fifo,
                "{\"utc_timestamp_ms\":1700000000000,\"api_server\":{\"process_startup_time_us\":42}}\n" +
                "this is not json\n" +
                "[1,2,3]\n" +
                "{\"a\":1} trailing\n" +
                "{\"utc_timestamp_ms\":1700000000001,\"vmm\":{\"panic_count\":0}}\n");
            await WaitForAsync(() => reader.Samples + reader.MalformedLines >= 5);
        }

        Assert.Equal(2, reader.Samples);
        Assert.Equal(3, reader.MalformedLines);
        Assert.Equal(1700000000001, reader.Latest!.UtcTimestampMs);
        Assert.Equal(0, reader.Latest.Counter("vmm", "panic_count"));
        Assert.Null(reader.Latest.Counter("api_server", "process_startup_time_us"));
        Assert.Single(logger.Entries, e => e.Level == LogLevel.Warning);
    }

    [Theory]
    [InlineData("2026-01-01T00:00:00.000000000 [vm1:main:ERROR:src/vmm.rs:10] boom", LogLevel.Error)]
    [InlineData("2026-01-01T00:00:00.000000000 [vm1:fc_vcpu 0:WARN] slow", LogLevel.Warning)]
    [InlineData("2026-01-01T00:00:00.000000000 [vm1:main:DEBUG] detail", LogLevel.Debug)]
    [InlineData("2026-01-01T00:00:00.000000000 [vm1:main] no level shown", LogLevel.Information)]
    [InlineData("no brackets at all", LogLevel.Information)]
    public void Firecracker_log_levels_map_to_logger_levels(string line, LogLevel expected)
    {
        Assert.Equal(expected, FirecrackerLogForwarder.LevelOf(line));
    }

    /// <summary>How a flood went.</summary>
    private sealed record FloodResult(long BytesWritten, long WouldBlock, double LongestWaitMs, long? StalledAfterBytes, TimeSpan Elapsed);

    private static FloodResult Flood(string fifo, long total, int stallLimitMs = StallLimitMs)
    {
        var line = new byte[LineBytes];
        Array.Fill(line, (byte)'m');
        line[^1] = (byte)'\n';
        var fd = Interop.Open(fifo, Libc.O_WRONLY | Libc.O_NONBLOCK);
        var clock = Stopwatch.StartNew();
        long written = 0;
        long wouldBlock = 0;
        double longestWait = 0;
        try
        {
            Span<Libc.PollFd> fds = stackalloc Libc.PollFd[1];
            while (written < total)
            {
                var n = Interop.Write(fd, line, fifo);
                if (n == LineBytes)
                {
                    written += n;
                    continue;
                }

                Assert.Equal(-Libc.EAGAIN, n); // writes below PIPE_BUF are all or nothing
                wouldBlock++;
                var waited = Stopwatch.StartNew();
                fds[0] = new Libc.PollFd { Fd = fd, Events = Interop.POLLOUT };
                if (Interop.Poll(fds, stallLimitMs, fifo) == 0)
                {
                    return new FloodResult(written, wouldBlock, waited.Elapsed.TotalMilliseconds, written, clock.Elapsed);
                }

                longestWait = Math.Max(longestWait, waited.Elapsed.TotalMilliseconds);
            }

            return new FloodResult(written, wouldBlock, longestWait, null, clock.Elapsed);
        }
        finally
        {
            Libc.CloseQuietly(fd);
        }
    }

    private static async Task WriteAllAsync(string fifo, string text)
    {
        var fd = Interop.Open(fifo, Libc.O_WRONLY | Libc.O_NONBLOCK);
        try
        {
            var bytes = Encoding.UTF8.GetBytes(text).AsMemory();
            while (!bytes.IsEmpty)
            {
                var n = Interop.Write(fd, bytes.Span, fifo);
                if (n > 0)
                {
                    bytes = bytes[n..];
                }
                else
                {
                    await Task.Delay(1);
                }
            }
        }
        finally
        {
            Libc.CloseQuietly(fd);
        }
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "the reader did not deliver in 30 s");
            await Task.Delay(10);
        }
    }
}
