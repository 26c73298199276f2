using System.Text;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Tests;

public sealed class FifoTests : IDisposable
{
    private const UnixFileMode Rw = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly TempDir _tmp = new();
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(30));

    public void Dispose()
    {
        _timeout.Dispose();
        _tmp.Dispose();
    }

    [Fact]
    public void Create_makes_a_fifo_and_accepts_an_existing_one()
    {
        string path = _tmp.Combine("f");
        Fifo.Create(path, Rw);
        Assert.True(Fifo.IsFifo(path));
        Fifo.Create(path, Rw);
        Assert.True(Fifo.IsFifo(path));
    }

    [Fact]
    public void Create_refuses_a_regular_file()
    {
        string path = _tmp.Combine("plain");
        File.WriteAllText(path, "x");
        var e = Assert.Throws<UnixIOException>(() => Fifo.Create(path, Rw));
        Assert.Equal($"file {path} is not fifo", e.Message);
        Assert.False(Fifo.IsFifo(path));
    }

    [Fact]
    public async Task Open_without_create_fails_for_a_missing_path_and_names_it()
    {
        string path = _tmp.Combine("missing");
        var e = await Assert.ThrowsAsync<UnixIOException>(
            () => Fifo.OpenAsync(path, FifoMode.Read | FifoMode.NonBlocking, 0, _timeout.Token));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Nonblocking_write_open_returns_before_a_reader_and_data_flows_after()
    {
        string path = _tmp.Combine("f");
        await using FifoStream writer = await Fifo.OpenAsync(path, FifoMode.Write | FifoMode.Create | FifoMode.NonBlocking, Rw, _timeout.Token);
        Assert.False(writer.WhenOpen.IsCompleted);

        Task pendingWrite = writer.WriteAsync("hello"u8.ToArray(), _timeout.Token).AsTask();
        Assert.False(pendingWrite.IsCompleted);

        await using FifoStream reader = await Fifo.OpenAsync(path, FifoMode.Read, 0, _timeout.Token);
        await pendingWrite;
        await writer.DisposeAsync();

        using var sr = new StreamReader(reader, Encoding.UTF8);
        Assert.Equal("hello", await sr.ReadToEndAsync(_timeout.Token));
    }

    [Fact]
    public async Task Blocking_write_open_waits_for_a_reader_without_blocking_the_caller()
    {
        string path = _tmp.Combine("f");
        Fifo.Create(path, Rw);
        Task<FifoStream> open = Fifo.OpenAsync(path, FifoMode.Write, 0, _timeout.Token);
        await Task.Delay(100);
        Assert.False(open.IsCompleted);

        await using FifoStream reader = await Fifo.OpenAsync(path, FifoMode.Read, 0, _timeout.Token);
        await using FifoStream writer = await open;
        await writer.WriteAsync("x"u8.ToArray(), _timeout.Token);
        var buffer = new byte[1];
        Assert.Equal(1, await reader.ReadAsync(buffer, _timeout.Token));
        Assert.Equal((byte)'x', buffer[0]);
    }

    [Theory]
    [InlineData(FifoMode.Write)]
    [InlineData(FifoMode.Read)]
    public async Task Cancelling_a_pending_open_ends_it_and_leaves_the_fifo_usable(FifoMode mode)
    {
        string path = _tmp.Combine("f");
        Fifo.Create(path, Rw);
        using var cts = new CancellationTokenSource();
        Task<FifoStream> open = Fifo.OpenAsync(path, mode, 0, cts.Token);
        await Task.Delay(100);
        cts.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => open);

        // The abandoned open must not have left an end open: a fresh pair still works end to end.
        await using FifoStream reader = await Fifo.OpenAsync(path, FifoMode.Read | FifoMode.NonBlocking, 0, _timeout.Token);
        await using FifoStream writer = await Fifo.OpenAsync(path, FifoMode.Write, 0, _timeout.Token);
        await writer.WriteAsync("ok"u8.ToArray(), _timeout.Token);
        await writer.DisposeAsync();
        using var sr = new StreamReader(reader);
        Assert.Equal("ok", await sr.ReadToEndAsync(_timeout.Token));
    }

    [Fact]
    public async Task Disposing_before_the_open_completes_fails_pending_io()
    {
        string path = _tmp.Combine("f");
        FifoStream writer = await Fifo.OpenAsync(path, FifoMode.Write | FifoMode.Create | FifoMode.NonBlocking, Rw, _timeout.Token);
        Task pendingWrite = writer.WriteAsync("lost"u8.ToArray(), _timeout.Token).AsTask();
        await writer.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => pendingWrite);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => writer.WhenOpen);
    }

    [Fact]
    public async Task ReadWrite_open_never_waits_for_a_peer()
    {
        string path = _tmp.Combine("f");
        await using FifoStream both = await Fifo.OpenAsync(path, FifoMode.ReadWrite | FifoMode.Create, Rw, _timeout.Token);
        Assert.True(both.WhenOpen.IsCompletedSuccessfully);
        await both.WriteAsync("loop"u8.ToArray(), _timeout.Token);
        var buffer = new byte[4];
        await both.ReadExactlyAsync(buffer, _timeout.Token);
        Assert.Equal("loop"u8.ToArray(), buffer);
    }

    [Fact]
    public async Task A_megabyte_passes_through_intact()
    {
        string path = _tmp.Combine("f");
        byte[] data = new byte[1 << 20];
        new Random(7).NextBytes(data);
        await using FifoStream reader = await Fifo.OpenAsync(path, FifoMode.Read | FifoMode.Create | FifoMode.NonBlocking, Rw, _timeout.Token);
        Task writeAll = Task.Run(async () =>
        {
            await using FifoStream writer = await Fifo.OpenAsync(path, FifoMode.Write, 0, _timeout.Token);
            await writer.WriteAsync(data, _timeout.Token);
        });

        using var received = new MemoryStream();
        await reader.CopyToAsync(received, _timeout.Token);
        await writeAll;
        Assert.Equal(data, received.ToArray());
    }
}
