using System.Net.Sockets;

namespace FirecrackerContainerd.Agent.Stdio;

/// <summary>Where the host connects to a process's stdio: a vsock port in the VM, a Unix socket per port elsewhere.</summary>
internal interface IStdioTransport
{
    /// <summary>Starts listening on <paramref name="port"/> for the host's one connection.</summary>
    IStdioListener Listen(uint port);
}

/// <summary>A listener for the single connection of one stdio stream.</summary>
internal interface IStdioListener : IDisposable
{
    /// <summary>Waits for the host to connect; the listener closes after that connection.</summary>
    Task<Stream> AcceptAsync(CancellationToken cancellationToken);
}

/// <summary>stdio over AF_VSOCK ports (the host dials them through the VMM's hybrid vsock socket).</summary>
internal sealed class VsockStdioTransport : IStdioTransport
{
    public IStdioListener Listen(uint port) => new Listener(VsockListener.Listen(port, backlog: 1));

    private sealed class Listener(VsockListener listener) : IStdioListener
    {
        public async Task<Stream> AcceptAsync(CancellationToken cancellationToken)
        {
            using CancellationTokenRegistration stop = cancellationToken.Register(listener.Dispose);
            var accepted = new TaskCompletionSource<Stream?>(TaskCreationOptions.RunContinuationsAsynchronously);
            var thread = new Thread(() => accepted.TrySetResult(listener.Accept())) { IsBackground = true, Name = $"stdio-accept-{listener.Port}" };
            thread.Start();
            Stream? connection = await accepted.Task.ConfigureAwait(false);
            listener.Dispose();
            if (cancellationToken.IsCancellationRequested)
            {
                connection?.Dispose();
                cancellationToken.ThrowIfCancellationRequested();
            }

            return connection ?? throw new IOException($"vsock port {listener.Port} closed before the host connected");
        }

        public void Dispose() => listener.Dispose();
    }
}

/// <summary>stdio over Unix sockets named <c>&lt;dir&gt;/&lt;port&gt;.sock</c>, for running the agent outside a VM.</summary>
internal sealed class UnixStdioTransport(string directory) : IStdioTransport
{
    public IStdioListener Listen(uint port)
    {
        string path = Path.Combine(directory, $"{port}.sock");
        File.Delete(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        socket.Listen(1);
        return new Listener(socket, path);
    }

    private sealed class Listener(Socket socket, string path) : IStdioListener
    {
        public async Task<Stream> AcceptAsync(CancellationToken cancellationToken)
        {
            Socket accepted = await socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
            Dispose();
            return new NetworkStream(accepted, ownsSocket: true);
        }

        public void Dispose()
        {
            socket.Dispose();
            File.Delete(path);
        }
    }
}
