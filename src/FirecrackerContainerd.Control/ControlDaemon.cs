using System.Net.Sockets;
using FirecrackerContainerd.Control.Configuration;
using FirecrackerContainerd.Control.Grpc;
using FirecrackerContainerd.Control.Service;
using FirecrackerContainerd.Control.Shims;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Ttrpc.Server;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Control;

/// <summary>The firecracker-control daemon: binds its sockets (0600) and serves "Firecracker" and "FirecrackerControl" over ttrpc and gRPC until stopped.</summary>
public sealed class ControlDaemon : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly TtrpcServer _server;
    private readonly string _socketPath;
    private readonly GrpcGateway? _grpc;

    private ControlDaemon(Socket listener, TtrpcServer server, string socketPath, GrpcGateway? grpc)
    {
        _listener = listener;
        _server = server;
        _socketPath = socketPath;
        _grpc = grpc;
    }

    /// <summary>Binds <see cref="ControlOptions.SocketPath"/> (replacing a stale socket) and starts serving.</summary>
    /// <exception cref="IOException">Another daemon serves on the socket, or binding failed.</exception>
    public static async Task<ControlDaemon> StartAsync(ControlOptions options, IShimLauncher launcher, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        Directory.CreateDirectory(options.StateDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var vms = new VmRegistry(options.ContainerdAddress, options.StateDir, launcher, logger);
        var registry = new TtrpcServiceRegistry();
        new FirecrackerForwarder(vms, logger).Register(registry);
        new VmListService(vms).Register(registry);

        // ShimSocket's binding rules fit here too: 0600, its directory made, a stale file replaced, a live one refused.
        var listener = await ShimSocket.BindAsync(options.SocketPath, cancellationToken).ConfigureAwait(false);
        var server = new TtrpcServer(registry, new TtrpcServerOptions { RequireSameUser = true }, logger);
        _ = server.ServeAsync(listener, CancellationToken.None);
        GrpcGateway? grpc = null;
        if (options.GrpcSocketPath.Length > 0)
        {
            try
            {
                grpc = await GrpcGateway.StartAsync(options.GrpcSocketPath, registry, logger, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await server.DisposeAsync().ConfigureAwait(false);
                listener.Dispose();
                ShimSocket.Remove(options.SocketPath);
                throw;
            }
        }

        return new ControlDaemon(listener, server, options.SocketPath, grpc);
    }

    /// <summary>Stops accepting, lets running calls finish for a moment, and removes the socket.</summary>
    public async ValueTask DisposeAsync()
    {
        using var drain = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await _server.ShutdownAsync(drain.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Calls still running are cut by the dispose below.
        }

        await _server.DisposeAsync().ConfigureAwait(false);
        _listener.Dispose();
        ShimSocket.Remove(_socketPath);
        if (_grpc is not null)
        {
            await _grpc.DisposeAsync().ConfigureAwait(false);
        }
    }
}
