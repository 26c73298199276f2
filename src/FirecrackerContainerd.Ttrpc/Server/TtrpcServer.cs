using System.Collections.Concurrent;
using System.Net.Sockets;
using FirecrackerContainerd.Ttrpc.Transport;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Ttrpc.Server;

/// <summary>
/// A ttrpc server: accepts connections on any listening socket and serves each one with
/// <see cref="ServerConnection"/> (concurrent handlers, serialised writes).
/// </summary>
public sealed partial class TtrpcServer : IAsyncDisposable
{
    private readonly TtrpcServiceRegistry _services;
    private readonly TtrpcServerOptions _options;
    private readonly PeerCredentials _self = PeerCredentials.OfThisProcess();
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopAccepting = new();
    private readonly CancellationTokenSource _hardStop = new();
    private readonly ConcurrentDictionary<ServerConnection, Task> _connections = new();
    private readonly List<Task> _acceptLoops = [];
    private readonly Lock _lock = new();
    private bool _shuttingDown;

    /// <summary>Creates a server for the methods in <paramref name="services"/>.</summary>
    public TtrpcServer(TtrpcServiceRegistry services, TtrpcServerOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        _services = services;
        _options = options ?? TtrpcServerOptions.Default;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Accepts connections on <paramref name="listener"/> until shutdown or cancellation; the caller owns the listener.</summary>
    public Task ServeAsync(Socket listener, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(listener);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_shuttingDown, this);
            var loop = AcceptLoopAsync(listener, cancellationToken);
            _acceptLoops.Add(loop);
            return loop;
        }
    }

    /// <summary>Serves one already connected socket until it closes; the server owns the socket from now on.</summary>
    public Task ServeConnectionAsync(Socket connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        lock (_lock)
        {
            if (_shuttingDown)
            {
                connection.Dispose();
                return Task.CompletedTask;
            }

            var served = new ServerConnection(connection, _services, _options, _self, _logger, _hardStop.Token);
            var run = RunConnectionAsync(served);
            return run;
        }
    }

    /// <summary>
    /// Serves one connected full-duplex stream until it closes (for transports .NET has no <see cref="Socket"/> for,
    /// such as AF_VSOCK inside a guest); the server owns the stream from now on. No peer credentials are checked.
    /// </summary>
    public Task ServeConnectionAsync(Stream connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        lock (_lock)
        {
            if (_shuttingDown)
            {
                connection.Dispose();
                return Task.CompletedTask;
            }

            var served = new ServerConnection(connection, null, _services, _options, _self, _logger, _hardStop.Token);
            return RunConnectionAsync(served);
        }
    }

    /// <summary>
    /// Stops accepting, lets calls in flight finish (cancelling them if <paramref name="cancellationToken"/> fires first),
    /// then closes every connection.
    /// </summary>
    public async Task ShutdownAsync(CancellationToken cancellationToken = default)
    {
        Task[] loops;
        lock (_lock)
        {
            _shuttingDown = true;
            loops = [.. _acceptLoops];
        }

        await _stopAccepting.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(loops).ConfigureAwait(false);

        var connections = _connections.Keys.ToArray();
        foreach (var connection in connections)
        {
            connection.StopReading();
        }

        try
        {
            await Task.WhenAll(connections.Select(c => c.InFlightAsync())).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await _hardStop.CancelAsync().ConfigureAwait(false);
        }

        foreach (var connection in connections)
        {
            connection.Close();
        }

        await Task.WhenAll(_connections.Values).ConfigureAwait(false);
    }

    /// <summary>Stops at once: cancels calls in flight and closes every connection.</summary>
    public async ValueTask DisposeAsync()
    {
        await _hardStop.CancelAsync().ConfigureAwait(false);
        await ShutdownAsync(CancellationToken.None).ConfigureAwait(false);
        _stopAccepting.Dispose();
        _hardStop.Dispose();
    }

    private async Task AcceptLoopAsync(Socket listener, CancellationToken cancellationToken)
    {
        await Task.Yield();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopAccepting.Token);
        while (!stop.IsCancellationRequested)
        {
            Socket accepted;
            try
            {
                accepted = await listener.AcceptAsync(stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (ObjectDisposedException)
            {
                break;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.OperationAborted)
            {
                break; // the caller closed its listener under a pending accept: serving it has ended
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset
                                            or SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable)
            {
                // A transient per-connection failure; keep accepting (after a pause if the process is out of descriptors).
                LogAcceptFailed(_logger, e.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(50), CancellationToken.None).ConfigureAwait(false);
                continue;
            }

            _ = ServeConnectionAsync(accepted);
        }
    }

    private async Task RunConnectionAsync(ServerConnection connection)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _connections[connection] = done.Task;
        try
        {
            await connection.RunAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // One bad connection must never take the server down.
        catch (Exception e)
#pragma warning restore CA1031
        {
            LogConnectionFailed(_logger, e);
        }
        finally
        {
            // After a graceful stop of reading, answers still in flight go out before the socket closes.
            await connection.InFlightAsync().ConfigureAwait(false);
            _connections.TryRemove(connection, out _);
            connection.Dispose();
            done.TrySetResult();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "ttrpc server: accept failed: {Reason}")]
    private static partial void LogAcceptFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "ttrpc server: connection failed")]
    private static partial void LogConnectionFailed(ILogger logger, Exception exception);
}
