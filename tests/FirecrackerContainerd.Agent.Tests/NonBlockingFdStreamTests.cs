using System.Security.Cryptography;
using FirecrackerContainerd.Agent.Native;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Agent.Tests;

/// <summary>Pipe ends read and written without a blocked thread, as the agent relays container stdio.</summary>
public sealed class NonBlockingFdStreamTests
{
    [Fact]
    public async Task A_read_waits_for_data_and_ends_at_the_writers_close()
    {
        var (read, write) = Interop.Pipe();
        await using var reader = new NonBlockingFdStream(read, forReading: true, "test pipe");
        await using var writer = new NonBlockingFdStream(write, forReading: false, "test pipe");
        byte[] buffer = new byte[16];

        Task<int> pending = reader.ReadAsync(buffer).AsTask();
        await Task.Delay(100);
        Assert.False(pending.IsCompleted);

        await writer.WriteAsync("hello"u8.ToArray());
        Assert.Equal(5, await pending.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("hello"u8.ToArray(), buffer[..5]);

        await writer.DisposeAsync();
        Assert.Equal(0, await reader.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Eight_MiB_through_a_64_KiB_pipe_arrive_intact_while_the_writer_waits_for_room()
    {
        var (read, write) = Interop.Pipe();
        await using var reader = new NonBlockingFdStream(read, forReading: true, "test pipe");
        byte[] data = RandomNumberGenerator.GetBytes(8 << 20);

        Task writing = Task.Run(async () =>
        {
            await using var writer = new NonBlockingFdStream(write, forReading: false, "test pipe");
            await writer.WriteAsync(data);
        });
        using var received = new MemoryStream();
        await reader.CopyToAsync(received).WaitAsync(TimeSpan.FromSeconds(60));
        await writing;

        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received.ToArray()));
    }

    [Fact]
    public async Task A_write_to_a_pipe_without_a_reader_fails_with_EPIPE()
    {
        var (read, write) = Interop.Pipe();
        Libc.Close(read);
        await using var writer = new NonBlockingFdStream(write, forReading: false, "test pipe");

        ErrnoException e = await Assert.ThrowsAsync<ErrnoException>(() => writer.WriteAsync(new byte[10]).AsTask());

        Assert.Equal(32, e.Errno);
        Assert.Equal(32, e.HResult);
        Assert.Contains("test pipe", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_waiting_read_ends_when_its_token_is_cancelled_and_when_the_stream_is_disposed()
    {
        var (read, write) = Interop.Pipe();
        try
        {
            var reader = new NonBlockingFdStream(read, forReading: true, "test pipe");
            using var cancel = new CancellationTokenSource();
            Task<int> cancelled = reader.ReadAsync(new byte[4], cancel.Token).AsTask();
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(TimeSpan.FromSeconds(10)));

            Task<int> pending = reader.ReadAsync(new byte[4]).AsTask();
            await reader.DisposeAsync();
            await Assert.ThrowsAsync<ObjectDisposedException>(() => pending.WaitAsync(TimeSpan.FromSeconds(10)));
            await Assert.ThrowsAsync<ObjectDisposedException>(() => reader.ReadAsync(new byte[4]).AsTask());
        }
        finally
        {
            Libc.Close(write);
        }
    }

    [Fact]
    public async Task A_hundred_waiting_reads_each_end_when_their_own_writer_closes()
    {
        var pipes = Enumerable.Range(0, 100).Select(_ => Interop.Pipe()).ToArray();
        var readers = pipes.Select(p => new NonBlockingFdStream(p.Read, forReading: true, "test pipe")).ToArray();
        var closed = new bool[pipes.Length];
        try
        {
            Task<int>[] reads = [.. readers.Select(r => r.ReadAsync(new byte[1]).AsTask())];
            for (int i = 0; i < pipes.Length; i += 2)
            {
                Libc.Close(pipes[i].Write);
                closed[i] = true;
            }

            await Task.WhenAll(reads.Where((_, i) => i % 2 == 0)).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.All(reads.Where((_, i) => i % 2 == 1), r => Assert.False(r.IsCompleted));
        }
        finally
        {
            for (int i = 0; i < pipes.Length; i++)
            {
                if (!closed[i])
                {
                    Libc.Close(pipes[i].Write);
                }
            }

            foreach (NonBlockingFdStream reader in readers)
            {
                await reader.DisposeAsync();
            }
        }
    }
}
