using System.Collections.Concurrent;
using System.Net.Sockets;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Ttrpc.Framing;
using FirecrackerContainerd.Ttrpc.Protocol;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Ttrpc.Transport;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Ttrpc.Tests;

public class ClientTests
{
    private const string Echo = ServerTests.Echo;

    [Fact]
    public async Task Hundreds_of_concurrent_calls_on_one_connection_get_their_own_answers()
    {
        var services = new TtrpcServiceRegistry().AddUnary(Echo, "Say", StringValue.Parser, async (request, context) =>
        {
            // Later requests finish first, so answers come back out of order.
            await Task.Delay(500 - (int.Parse(request.Value, System.Globalization.CultureInfo.InvariantCulture) % 50 * 10), context.CancellationToken);
            return new StringValue { Value = request.Value };
        });
        await using var harness = ServerHarness.Start(services);
        await using var client = await harness.ConnectClientAsync();

        // Calls start from many threads at once, so the client must keep ids increasing on the wire (the server checks).
        var calls = Enumerable.Range(0, 400)
            .Select(i => Task.Run(() => client.CallAsync(Echo, "Say", new StringValue { Value = i.ToString(System.Globalization.CultureInfo.InvariantCulture) }, StringValue.Parser)))
            .ToArray();
        var answers = await Task.WhenAll(calls);

        for (int i = 0; i < answers.Length; i++)
        {
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), answers[i].Value);
        }
    }

    [Fact]
    public async Task Stream_ids_are_odd_and_increasing()
    {
        var ids = new ConcurrentQueue<uint>();
        var services = new TtrpcServiceRegistry().AddUnary(Echo, "Id", (_, context) =>
        {
            ids.Enqueue(context.StreamId);
            return Task.FromResult<IMessage>(new Empty());
        });
        await using var harness = ServerHarness.Start(services);
        await using var client = await harness.ConnectClientAsync();

        for (int i = 0; i < 5; i++)
        {
            await client.CallAsync(Echo, "Id", ReadOnlyMemory<byte>.Empty);
        }

        Assert.Equal(new uint[] { 1, 3, 5, 7, 9 }, ids.ToArray());
    }

    [Fact]
    public async Task Missing_status_means_OK()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "raw.sock");
        using var listener = UnixSocketTransport.Listen(path);
        var server = Task.Run(async () =>
        {
            using var accepted = await listener.AcceptAsync();
            await using var stream = new NetworkStream(accepted);
            var frame = await new FrameReader(stream).ReadAsync(CancellationToken.None);
            using var writer = new FrameWriter(stream);
            // A Go server answers google.protobuf.Empty with a zero-length body: no status, no payload.
            await writer.WriteAsync(frame!.Header.StreamId, FrameType.Response, FrameFlagBits.None, ReadOnlyMemory<byte>.Empty, CancellationToken.None);
            await stream.ReadAtLeastAsync(new byte[1], 1, throwOnEndOfStream: false);
        });
        await using (var client = await TtrpcClient.ConnectUnixAsync(path, CancellationToken.None))
        {
            var answer = await client.CallAsync(Echo, "Nothing", new Empty(), Empty.Parser);
            Assert.Equal(new Empty(), answer);
        }

        await server;
    }

    [Fact]
    public async Task Timeout_is_sent_as_timeout_nano_and_raises_DeadlineExceeded()
    {
        var services = new TtrpcServiceRegistry().AddUnary(Echo, "Hang", async (_, context) =>
        {
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
            return new Empty();
        });
        await using var harness = ServerHarness.Start(services);
        await using var client = await harness.ConnectClientAsync();

        var e = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(
            Echo, "Hang", ReadOnlyMemory<byte>.Empty, new TtrpcCallOptions { Timeout = TimeSpan.FromMilliseconds(100) }));
        long seenTimeout = await CaptureTimeoutNanoAsync(TimeSpan.FromSeconds(2));

        Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        Assert.Equal(2_000_000_000, seenTimeout);
    }

    [Fact]
    public async Task Cancelled_call_throws_and_the_connection_stays_usable()
    {
        var services = ServerTests.EchoServices().AddUnary(Echo, "Hang", async (_, context) =>
        {
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
            return new Empty();
        });
        await using var harness = ServerHarness.Start(services);
        await using var client = await harness.ConnectClientAsync();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            client.CallAsync(Echo, "Hang", ReadOnlyMemory<byte>.Empty, cancellationToken: cancel.Token));
        var answer = await client.CallAsync(Echo, "Say", new StringValue { Value = "after" }, StringValue.Parser);

        Assert.Equal("after", answer.Value);
    }

    [Fact]
    public async Task Calls_in_flight_fail_with_ttrpc_closed_when_the_server_goes_away()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "raw.sock");
        using var listener = UnixSocketTransport.Listen(path);
        var server = Task.Run(async () =>
        {
            using var accepted = await listener.AcceptAsync();
            await using var stream = new NetworkStream(accepted);
            await new FrameReader(stream).ReadAsync(CancellationToken.None);
            // Vanish without answering.
        });
        await using var client = await TtrpcClient.ConnectUnixAsync(path, CancellationToken.None);

        var e = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(Echo, "Hang", ReadOnlyMemory<byte>.Empty));
        await server;

        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Equal("ttrpc: closed", e.Message);
        await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(Echo, "Again", ReadOnlyMemory<byte>.Empty));
    }

    [Fact]
    public async Task Server_status_surfaces_as_TtrpcException_with_its_code()
    {
        var services = new TtrpcServiceRegistry().AddUnary(Echo, "Missing",
            (_, _) => Task.FromException<IMessage>(new TtrpcException(StatusCode.NotFound, "task t1 not found")));
        await using var harness = ServerHarness.Start(services);
        await using var client = await harness.ConnectClientAsync();

        var e = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(Echo, "Missing", ReadOnlyMemory<byte>.Empty));

        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Equal("task t1 not found", e.Message);
    }

    /// <summary>Runs one call with <paramref name="timeout"/> against a raw server and returns the timeout_nano it carried.</summary>
    private static async Task<long> CaptureTimeoutNanoAsync(TimeSpan timeout)
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "raw.sock");
        using var listener = UnixSocketTransport.Listen(path);
        var server = Task.Run(async () =>
        {
            using var accepted = await listener.AcceptAsync();
            await using var stream = new NetworkStream(accepted);
            var frame = await new FrameReader(stream).ReadAsync(CancellationToken.None);
            using var writer = new FrameWriter(stream);
            await writer.WriteAsync(frame!.Header.StreamId, FrameType.Response, FrameFlagBits.None, ReadOnlyMemory<byte>.Empty, CancellationToken.None);
            return Request.Parser.ParseFrom(frame.Payload.Span).TimeoutNano;
        });
        await using (var client = await TtrpcClient.ConnectUnixAsync(path, CancellationToken.None))
        {
            await client.CallAsync(Echo, "T", ReadOnlyMemory<byte>.Empty, new TtrpcCallOptions { Timeout = timeout });
        }

        return await server;
    }
}
