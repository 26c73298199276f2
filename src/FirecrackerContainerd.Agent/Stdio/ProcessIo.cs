using System.Net.Sockets;
using FirecrackerContainerd.Agent.Native;
using FirecrackerContainerd.Agent.Oci;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Agent.Stdio;

/// <summary>
/// The stdio of one container process, relayed to and from the host's connections on the process's
/// vsock ports: either pipes the process inherits, or a terminal whose master the runtime hands over
/// (<see cref="AttachTerminal"/>). Output waits in the pipe or the terminal until the host connects, so
/// nothing is lost; EOF on the process's output closes the host's connection.
/// </summary>
internal sealed class ProcessIo : IAsyncDisposable
{
    private const int RelayBufferBytes = 64 * 1024;

    private readonly List<IStdioListener> _listeners = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<PseudoTerminal> _terminal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _sizeGate = new();
    private readonly int _devNull;
    private (ushort Columns, ushort Rows)? _pendingSize;
    private int _stdinChild = -1;
    private int _stdoutChild = -1;
    private int _stderrChild = -1;
    private Stream? _stdinWriter;
    private int _terminalStdinClosed;
    private Task _stdout = Task.CompletedTask;
    private Task _stderr = Task.CompletedTask;
    private Task _stdin = Task.CompletedTask;

    private ProcessIo(int devNull, bool isTerminal)
    {
        _devNull = devNull;
        IsTerminal = isTerminal;
    }

    /// <summary>Whether the process's stdio is a terminal.</summary>
    public bool IsTerminal { get; }

    /// <summary>The process's terminal, once the runtime has handed it over; null without one.</summary>
    public PseudoTerminal? Terminal => _terminal.Task.IsCompletedSuccessfully ? _terminal.Task.Result : null;

    /// <summary>The fds to give the runtime for the process (with a terminal, the runtime's own stdio: /dev/null).</summary>
    public ProcessStdio ChildStdio => new(_stdinChild, _stdoutChild, _stderrChild);

    /// <summary>Completes when the process's output has been fully written to the host (or dropped).</summary>
    public Task OutputDone => Task.WhenAll(_stdout, _stderr);

    /// <summary>
    /// Starts listening on the non-zero ports of <paramref name="paths"/>. Without a terminal the pipes the process
    /// inherits are made now; with one, the relays begin once <see cref="AttachTerminal"/> hands them the master.
    /// </summary>
    public static ProcessIo Create(IStdioTransport transport, StdioPaths paths)
    {
        var io = new ProcessIo(Interop.Open("/dev/null", Libc.O_RDWR), paths.Terminal);
        return io.SetUp(() =>
        {
            if (paths.Terminal)
            {
                io.SetUpTerminal(transport, paths);
            }
            else
            {
                io.SetUpPipes(transport, paths);
            }
        });
    }

    /// <summary>Gives the relays the process's terminal; this object owns it from now on.</summary>
    public void AttachTerminal(PseudoTerminal terminal)
    {
        lock (_sizeGate)
        {
            if (!IsTerminal || !_terminal.TrySetResult(terminal))
            {
                terminal.Dispose();
                throw new InvalidOperationException("this process's stdio takes no (further) terminal");
            }

            if (_pendingSize is var (columns, rows))
            {
                try
                {
                    terminal.Resize(columns, rows);
                }
                catch (IOException e)
                {
                    AgentTrace.Write($"terminal {terminal.Name}: the size asked before it existed was not set: {e.Message}");
                }
            }
        }
    }

    /// <summary>
    /// Sets the terminal's window size; asked before the runtime handed the terminal over (an exec not
    /// started yet), the size is set as soon as it arrives.
    /// </summary>
    public void ResizeTerminal(ushort columns, ushort rows)
    {
        if (!IsTerminal)
        {
            throw new InvalidOperationException("the process has no terminal");
        }

        lock (_sizeGate)
        {
            if (Terminal is { } terminal)
            {
                terminal.Resize(columns, rows);
            }
            else
            {
                _pendingSize = (columns, rows);
            }
        }
    }

    /// <summary>Closes the pipe ends only the child needs; call once the runtime has started the process.</summary>
    public void CloseChildEnds()
    {
        foreach (int fd in new[] { _stdinChild, _stdoutChild, _stderrChild }.Distinct())
        {
            if (fd != _devNull)
            {
                Libc.CloseQuietly(fd);
            }
        }

        _stdinChild = _stdoutChild = _stderrChild = -1;
    }

    /// <summary>
    /// Ends the process's input (CloseIO): closes the stdin pipe, or on a terminal types its EOF character
    /// once (closing the master would hang the terminal up instead); later input is dropped.
    /// </summary>
    public async Task CloseStdinAsync(CancellationToken cancellationToken)
    {
        if (!IsTerminal)
        {
            Interlocked.Exchange(ref _stdinWriter, null)?.Dispose();
            return;
        }

        if (Interlocked.Exchange(ref _terminalStdinClosed, 1) == 0 && Terminal is { } terminal)
        {
            await terminal.WriteEndOfFileAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (IStdioListener listener in _listeners)
        {
            listener.Dispose();
        }

        CloseChildEnds();
        Interlocked.Exchange(ref _stdinWriter, null)?.Dispose();
        try
        {
            await Task.WhenAll(_stdin, _stdout, _stderr).WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or IOException or SocketException or ObjectDisposedException)
        {
            // A relay still blocked in a read belongs to a process that outlived its task; let it go.
        }

        Terminal?.Dispose();
        Libc.CloseQuietly(_devNull);
        _stop.Dispose();
    }

    private ProcessIo SetUp(Action setUp)
    {
        try
        {
            setUp();
            return this;
        }
        catch
        {
            CloseChildEnds();
            _stop.Cancel();
            foreach (IStdioListener listener in _listeners)
            {
                listener.Dispose();
            }

            Libc.CloseQuietly(_devNull);
            throw;
        }
    }

    private void SetUpPipes(IStdioTransport transport, StdioPaths paths)
    {
        _stdinChild = _stdoutChild = _stderrChild = _devNull;
        if (paths.StdinPort != 0)
        {
            var (read, write) = Interop.Pipe();
            _stdinChild = read;
            _stdinWriter = new NonBlockingFdStream(write, forReading: false, $"stdin pipe fd {write}");
            _stdin = RelayStdinAsync(Listen(transport, paths.StdinPort));
        }

        if (paths.StdoutPort != 0)
        {
            var (read, write) = Interop.Pipe();
            _stdoutChild = write;
            _stdout = RelayOutputAsync(read, Listen(transport, paths.StdoutPort));
        }

        if (paths.StderrPort != 0)
        {
            var (read, write) = Interop.Pipe();
            _stderrChild = write;
            _stderr = RelayOutputAsync(read, Listen(transport, paths.StderrPort));
        }
    }

    private void SetUpTerminal(IStdioTransport transport, StdioPaths paths)
    {
        _stdinChild = _stdoutChild = _stderrChild = _devNull;
        if (paths.StdinPort != 0)
        {
            _stdin = RelayTerminalInputAsync(Listen(transport, paths.StdinPort));
        }

        // Without a stdout connection the terminal is still drained, or a chatty process would block.
        _stdout = RelayTerminalOutputAsync(paths.StdoutPort != 0 ? Listen(transport, paths.StdoutPort) : null);
    }

    private IStdioListener Listen(IStdioTransport transport, uint port)
    {
        IStdioListener listener = transport.Listen(port);
        _listeners.Add(listener);
        return listener;
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
                Stream? writer = Volatile.Read(ref _stdinWriter);
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
            Interlocked.Exchange(ref _stdinWriter, null)?.Dispose();
        }
    }

    private async Task RelayTerminalInputAsync(IStdioListener listener)
    {
        await Task.Yield();
        try
        {
            await using Stream connection = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            PseudoTerminal terminal = await _terminal.Task.WaitAsync(_stop.Token).ConfigureAwait(false);
            byte[] buffer = new byte[RelayBufferBytes];
            int n;
            while ((n = await connection.ReadAsync(buffer, _stop.Token).ConfigureAwait(false)) > 0)
            {
                if (Volatile.Read(ref _terminalStdinClosed) != 0)
                {
                    break; // CloseIO typed EOF already: drop the rest
                }

                await terminal.WriteAsync(buffer.AsMemory(0, n), _stop.Token).ConfigureAwait(false);
            }

            // The host's end of input is the terminal's EOF, as with a pipe.
            await CloseStdinAsync(_stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The host hung up, the terminal is gone, or the process was deleted: input ends.
        }
    }

    private async Task RelayOutputAsync(int readFd, IStdioListener listener)
    {
        await Task.Yield();
        await using var pipe = new NonBlockingFdStream(readFd, forReading: true, $"output pipe fd {readFd}");
        await CopyToHostAsync(pipe, listener, $"output fd {readFd}").ConfigureAwait(false);
    }

    private async Task RelayTerminalOutputAsync(IStdioListener? listener)
    {
        await Task.Yield();
        PseudoTerminal terminal;
        try
        {
            terminal = await _terminal.Task.WaitAsync(_stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return; // deleted before the runtime handed over a terminal
        }

        await using Stream output = terminal.OpenOutput();
        if (listener is null)
        {
            await DrainAsync(output).ConfigureAwait(false);
            return;
        }

        await CopyToHostAsync(output, listener, $"terminal {terminal.Name}").ConfigureAwait(false);
    }

    private async Task CopyToHostAsync(Stream source, IStdioListener listener, string what)
    {
        try
        {
            await using Stream connection = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            AgentTrace.Write($"stdio: host connected for {what}");
            await source.CopyToAsync(connection, RelayBufferBytes, _stop.Token).ConfigureAwait(false);
            await connection.FlushAsync(_stop.Token).ConfigureAwait(false);
            AgentTrace.Write($"stdio: {what} reached EOF");

            // Closing the connection (end of the using) is the host's EOF.
        }
        catch (OperationCanceledException)
        {
            // Disposed: closing the source ends the relay.
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            // The host went away: drain the source so the process never blocks on a full pipe or terminal.
            await DrainAsync(source).ConfigureAwait(false);
        }
    }

    private static async Task DrainAsync(Stream source)
    {
        try
        {
            await source.CopyToAsync(Stream.Null).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
        }
    }
}
