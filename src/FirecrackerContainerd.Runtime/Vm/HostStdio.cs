using System.Net.Sockets;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vsock.Unix;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>
/// The host half of one process's stdio: containerd's FIFOs copied to and from the process's vsock
/// ports in the guest. Output completes (<see cref="OutputDone"/>) when the guest closes the streams.
/// </summary>
internal sealed class HostStdio : IAsyncDisposable
{
    private static readonly HybridVsockDialOptions Dial = new(TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(5));
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _connections = [];
    private readonly TaskCompletionSource<long> _firstOutput = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _stdin = Task.CompletedTask;
    private Task _stdout = Task.CompletedTask;
    private Task _stderr = Task.CompletedTask;

    private HostStdio()
    {
    }

    /// <summary>Completes once the guest's stdout and stderr have been copied to containerd's FIFOs.</summary>
    public Task OutputDone => Task.WhenAll(_stdout, _stderr);

    /// <summary>
    /// When the first byte of output (stdout or stderr) reached the host, as a <see cref="System.Diagnostics.Stopwatch"/>
    /// timestamp; canceled if none came before the process's stdio is disposed.
    /// </summary>
    public Task<long> FirstOutput => _firstOutput.Task;

    /// <summary>The ports to give the agent: zero for a stream containerd did not ask for.</summary>
    public static (uint Stdin, uint Stdout, uint Stderr) Ports((uint Stdin, uint Stdout, uint Stderr) ports, string stdin, string stdout, string stderr) =>
        (stdin.Length == 0 ? 0 : ports.Stdin, stdout.Length == 0 ? 0 : ports.Stdout, stderr.Length == 0 ? 0 : ports.Stderr);

    /// <summary>Dials the process's ports (the agent listens once Create or Exec returned) and starts copying.</summary>
    public static async Task<HostStdio> ConnectAsync(
        string vsockPath, (uint Stdin, uint Stdout, uint Stderr) ports, string stdin, string stdout, string stderr, CancellationToken cancellationToken)
    {
        var io = new HostStdio();
        try
        {
            if (ports.Stdin != 0)
            {
                Socket connection = await io.DialAsync(vsockPath, ports.Stdin, cancellationToken).ConfigureAwait(false);
                io._stdin = io.CopyStdinAsync(stdin, connection);
            }

            if (ports.Stdout != 0)
            {
                Socket connection = await io.DialAsync(vsockPath, ports.Stdout, cancellationToken).ConfigureAwait(false);
                io._stdout = io.CopyOutputAsync(connection, stdout);
            }

            if (ports.Stderr != 0)
            {
                Socket connection = await io.DialAsync(vsockPath, ports.Stderr, cancellationToken).ConfigureAwait(false);
                io._stderr = io.CopyOutputAsync(connection, stderr);
            }

            return io;
        }
        catch
        {
            await io.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _firstOutput.TrySetCanceled();
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (Socket connection in _connections)
        {
            connection.Dispose();
        }

        try
        {
            await Task.WhenAll(_stdin, _stdout, _stderr).WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // A copy blocked on a FIFO nobody reads any more; the FIFO is containerd's to clean up.
        }

        _stop.Dispose();
    }

    private async Task<Socket> DialAsync(string vsockPath, uint port, CancellationToken cancellationToken)
    {
        Socket connection = await HybridVsockDialer.DialAsync(vsockPath, port, Dial, cancellationToken).ConfigureAwait(false);
        _connections.Add(connection);
        return connection;
    }

    private async Task CopyStdinAsync(string fifoPath, Socket connection)
    {
        await Task.Yield();
        try
        {
            await using FifoStream fifo = await Fifo.OpenAsync(fifoPath, FifoMode.Read, 0, _stop.Token).ConfigureAwait(false);
            await using var network = new NetworkStream(connection, ownsSocket: false);
            await fifo.CopyToAsync(network, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            try
            {
                // EOF for the process's stdin. A full close, not only a shutdown of the sending side: the
                // hybrid vsock (a Unix socket on the host) need not carry a half-close through to the guest.
                connection.Shutdown(SocketShutdown.Send);
                connection.Close();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }
    }

    // containerd hands a FIFO path, or a file:// URI when the task logs to a file (ctr run --log-uri).
    private async Task<Stream> OpenOutputAsync(string path)
    {
        if (path.StartsWith("file://", StringComparison.Ordinal))
        {
            string file = new Uri(path).LocalPath;
            return new FileStream(file, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        }

        if (path.Contains("://", StringComparison.Ordinal))
        {
            throw new IOException($"stdio URI \"{path}\" is not supported (only FIFOs and file://)");
        }

        return await Fifo.OpenAsync(path, FifoMode.Write, 0, _stop.Token).ConfigureAwait(false);
    }

    private async Task CopyOutputAsync(Socket connection, string fifoPath)
    {
        await Task.Yield();
        try
        {
            await using var network = new NetworkStream(connection, ownsSocket: false);
            await using Stream target = await OpenOutputAsync(fifoPath).ConfigureAwait(false);

            // A read end of our own, never read, keeps the FIFO writable when containerd's reader goes away
            // (ctr run -d exits; ctr task attach opens it again later): output then waits in the pipe, and
            // the process blocks once it is full, instead of the copy failing with EPIPE and dropping the rest.
            await using FifoStream? keepWritable = target is FifoStream
                ? await Fifo.OpenAsync(fifoPath, FifoMode.Read, 0, _stop.Token).ConfigureAwait(false)
                : null;
            byte[] first = new byte[16 * 1024];
            int read = await network.ReadAsync(first, _stop.Token).ConfigureAwait(false);
            if (read > 0)
            {
                _firstOutput.TrySetResult(System.Diagnostics.Stopwatch.GetTimestamp());
                await target.WriteAsync(first.AsMemory(0, read), _stop.Token).ConfigureAwait(false);
                await network.CopyToAsync(target, _stop.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // containerd stopped reading or the VM went away: the output has nowhere to go.
        }
    }
}
