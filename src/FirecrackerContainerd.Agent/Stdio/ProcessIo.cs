using System.Net.Sockets;
using FirecrackerContainerd.Agent.Native;
using FirecrackerContainerd.Agent.Oci;
using Microsoft.Win32.SafeHandles;

namespace FirecrackerContainerd.Agent.Stdio;

/// <summary>
/// The stdio of one container process: pipes the process inherits, relayed to and from the host's
/// connections on the process's three vsock ports. Output waits in the pipes until the host connects,
/// so nothing is lost; EOF on the process's output closes the host's connection.
/// </summary>
internal sealed class ProcessIo : IAsyncDisposable
{
    private const int RelayBufferBytes = 64 * 1024;

    private readonly List<IStdioListener> _listeners = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly int _devNull;
    private int _stdinChild = -1;
    private int _stdoutChild = -1;
    private int _stderrChild = -1;
    private FileStream? _stdinWriter;
    private Task _stdout = Task.CompletedTask;
    private Task _stderr = Task.CompletedTask;
    private Task _stdin = Task.CompletedTask;

    private ProcessIo(int devNull)
    {
        _devNull = devNull;
    }

    /// <summary>The fds to give the runtime for the process.</summary>
    public ProcessStdio ChildStdio => new(_stdinChild, _stdoutChild, _stderrChild);

    /// <summary>Completes when the process's stdout and stderr have been fully written to the host (or dropped).</summary>
    public Task OutputDone => Task.WhenAll(_stdout, _stderr);

    /// <summary>Creates the pipes and starts listening on the non-zero ports.</summary>
    public static ProcessIo Create(IStdioTransport transport, uint stdinPort, uint stdoutPort, uint stderrPort)
    {
        var io = new ProcessIo(Interop.Open("/dev/null", Interop.O_RDWR));
        try
        {
            io.Setup(transport, stdinPort, stdoutPort, stderrPort);
            return io;
        }
        catch
        {
            io.CloseChildEnds();
            io._stop.Cancel();
            Interop.Close(io._devNull);
            throw;
        }
    }

    /// <summary>Closes the pipe ends only the child needs; call once the runtime has started the process.</summary>
    public void CloseChildEnds()
    {
        foreach (int fd in new[] { _stdinChild, _stdoutChild, _stderrChild }.Distinct())
        {
            if (fd != _devNull)
            {
                Interop.Close(fd);
            }
        }

        _stdinChild = _stdoutChild = _stderrChild = -1;
    }

    /// <summary>Closes the process's stdin (CloseIO).</summary>
    public void CloseStdin()
    {
        Interlocked.Exchange(ref _stdinWriter, null)?.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (IStdioListener listener in _listeners)
        {
            listener.Dispose();
        }

        CloseChildEnds();
        CloseStdin();
        try
        {
            await Task.WhenAll(_stdin, _stdout, _stderr).WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or IOException or SocketException or ObjectDisposedException)
        {
            // A relay still blocked in a read belongs to a process that outlived its task; let it go.
        }
        Interop.Close(_devNull);
        _stop.Dispose();
    }

    private void Setup(IStdioTransport transport, uint stdinPort, uint stdoutPort, uint stderrPort)
    {
        _stdinChild = _stdoutChild = _stderrChild = _devNull;
        if (stdinPort != 0)
        {
            var (read, write) = Interop.Pipe();
            _stdinChild = read;
            _stdinWriter = new FileStream(new SafeFileHandle(write, ownsHandle: true), FileAccess.Write, 0, false);
            IStdioListener listener = transport.Listen(stdinPort);
            _listeners.Add(listener);
            _stdin = RelayStdinAsync(listener);
        }

        if (stdoutPort != 0)
        {
            var (read, write) = Interop.Pipe();
            _stdoutChild = write;
            IStdioListener listener = transport.Listen(stdoutPort);
            _listeners.Add(listener);
            _stdout = RelayOutputAsync(read, listener);
        }

        if (stderrPort != 0)
        {
            var (read, write) = Interop.Pipe();
            _stderrChild = write;
            IStdioListener listener = transport.Listen(stderrPort);
            _listeners.Add(listener);
            _stderr = RelayOutputAsync(read, listener);
        }
    }

    private async Task RelayStdinAsync(IStdioListener listener)
    {
        await Task.Yield();
        try
        {
            await using Stream connection = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            byte[] buffer = new byte[RelayBufferBytes];
            int n;
            while ((n = await connection.ReadAsync(buffer, _stop.Token).ConfigureAwait(false)) > 0)
            {
                FileStream? writer = Volatile.Read(ref _stdinWriter);
                if (writer is null)
                {
                    break; // stdin was closed with CloseIO: drop the rest
                }

                await writer.WriteAsync(buffer.AsMemory(0, n), _stop.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The host hung up or the process's stdin is gone; either way stdin ends.
        }
        finally
        {
            CloseStdin();
        }
    }

    private async Task RelayOutputAsync(int readFd, IStdioListener listener)
    {
        await Task.Yield();
        await using var pipe = new FileStream(new SafeFileHandle(readFd, ownsHandle: true), FileAccess.Read, 0, false);
        try
        {
            await using Stream connection = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            AgentTrace.Write($"stdio: host connected for output fd {readFd}");
            await pipe.CopyToAsync(connection, RelayBufferBytes, _stop.Token).ConfigureAwait(false);
            await connection.FlushAsync(_stop.Token).ConfigureAwait(false);
            AgentTrace.Write($"stdio: output fd {readFd} reached EOF");

            // Closing the connection (end of the using) is the host's EOF.
        }
        catch (OperationCanceledException)
        {
            // Disposed: closing the read end ends the relay.
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            // The host went away: drain the pipe so the process never blocks on a full pipe.
            await DrainAsync(pipe).ConfigureAwait(false);
        }
    }

    private static async Task DrainAsync(Stream pipe)
    {
        try
        {
            await pipe.CopyToAsync(Stream.Null).ConfigureAwait(false);
        }
        catch (IOException)
        {
        }
    }
}
