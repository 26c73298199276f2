using System.Net.Sockets;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Ttrpc.Framing;
using FirecrackerContainerd.Ttrpc.Protocol;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Ttrpc.Transport;
using Google.Protobuf;

namespace FirecrackerContainerd.Ttrpc.Tests;

/// <summary>A real server on a real Unix socket in a private temp directory, torn down by DisposeAsync.</summary>
internal sealed class ServerHarness : IAsyncDisposable
{
    private readonly Socket _listener;

    private ServerHarness(string dir, Socket listener, TtrpcServer server, Task serving)
    {
        Directory = dir;
        _listener = listener;
        Server = server;
        Serving = serving;
    }

    public string Directory { get; }

    public string SocketPath => Path.Combine(Directory, "ttrpc.sock");

    public TtrpcServer Server { get; }

    public Task Serving { get; }

    public static ServerHarness Start(TtrpcServiceRegistry services, TtrpcServerOptions? options = null)
    {
        string dir = System.IO.Directory.CreateTempSubdirectory("ttrpc-test-").FullName;
        var listener = UnixSocketTransport.Listen(Path.Combine(dir, "ttrpc.sock"));
        var server = new TtrpcServer(services, options);
        var serving = server.ServeAsync(listener);
        return new ServerHarness(dir, listener, server, serving);
    }

    public Task<TtrpcClient> ConnectClientAsync() => TtrpcClient.ConnectUnixAsync(SocketPath, CancellationToken.None);

    public async Task<RawPeer> ConnectRawAsync() =>
        new(await UnixSocketTransport.ConnectAsync(SocketPath, CancellationToken.None));

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _listener.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}

/// <summary>A hand-driven client that writes arbitrary bytes and reads raw frames, to test the server's checks.</summary>
internal sealed class RawPeer : IAsyncDisposable
{
    public RawPeer(Socket socket)
    {
        Socket = socket;
        Stream = new NetworkStream(socket, ownsSocket: true);
        Reader = new FrameReader(Stream);
        Writer = new FrameWriter(Stream);
    }

    public Socket Socket { get; }

    public NetworkStream Stream { get; }

    public FrameReader Reader { get; }

    public FrameWriter Writer { get; }

    public static byte[] EncodeRequest(string service, string method, IMessage? payload = null, long timeoutNano = 0) =>
        new Request
        {
            Service = service,
            Method = method,
            Payload = payload?.ToByteString() ?? ByteString.Empty,
            TimeoutNano = timeoutNano,
        }.ToByteArray();

    public ValueTask SendAsync(uint streamId, FrameType type, byte[] body, FrameFlagBits flags = FrameFlagBits.None) =>
        Writer.WriteAsync(streamId, type, flags, body, CancellationToken.None);

    public async Task<(uint StreamId, Response Response)> ReadResponseAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var frame = await Reader.ReadAsync(timeout.Token) ?? throw new EndOfStreamException("server closed the connection");
        Assert.Equal(FrameType.Response, frame.Header.Type);
        return (frame.Header.StreamId, Response.Parser.ParseFrom(frame.Payload.Span));
    }

    public async ValueTask DisposeAsync()
    {
        await Stream.DisposeAsync();
        Writer.Dispose();
    }
}
