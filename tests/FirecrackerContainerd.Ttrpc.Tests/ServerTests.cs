using System.Net.Sockets;
using FirecrackerContainerd.Ttrpc.Framing;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Ttrpc.Transport;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Ttrpc.Tests;

public class ServerTests
{
    internal const string Echo = "test.Echo";

    internal static TtrpcServiceRegistry EchoServices() => new TtrpcServiceRegistry()
        .AddUnary(Echo, "Say", StringValue.Parser, (request, _) => Task.FromResult(new StringValue { Value = request.Value }));

    [Fact]
    public async Task Serving_ends_quietly_when_the_owner_closes_the_listener_under_a_pending_accept()
    {
        string dir = Directory.CreateTempSubdirectory("fc-ttrpc-").FullName;
        try
        {
            var server = new TtrpcServer(EchoServices());
            var listener = UnixSocketTransport.Listen(Path.Combine(dir, "s.sock"));
            Task serving = server.ServeAsync(listener);
            await Task.Delay(100); // let the accept loop block in accept()

            listener.Dispose();
            await serving.WaitAsync(TimeSpan.FromSeconds(10));
            await server.DisposeAsync();

            Assert.True(serving.IsCompletedSuccessfully);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Even_stream_id_is_answered_with_InvalidArgument()
    {
        await using var harness = ServerHarness.Start(EchoServices());
        await using var peer = await harness.ConnectRawAsync();

        await peer.SendAsync(2, FrameType.Request, RawPeer.EncodeRequest(Echo, "Say"));
        var (id, response) = await peer.ReadResponseAsync();

        Assert.Equal(2u, id);
        Assert.Equal((int)StatusCode.InvalidArgument, response.Status.Code);
        Assert.Equal("StreamID must be odd for client initiated streams", response.Status.Message);
    }

    [Fact]
    public async Task Garbage_body_is_answered_with_unmarshal_request_error()
    {
        await using var harness = ServerHarness.Start(EchoServices());
        await using var peer = await harness.ConnectRawAsync();

        await peer.SendAsync(1, FrameType.Request, [0xFF, 0xFF, 0xFF, 0xFF]);
        var (_, response) = await peer.ReadResponseAsync();

        Assert.Equal((int)StatusCode.InvalidArgument, response.Status.Code);
        Assert.StartsWith("unmarshal request error: ", response.Status.Message);
    }

    [Fact]
    public async Task Oversized_frame_is_answered_with_ResourceExhausted_and_the_connection_keeps_working()
    {
        await using var harness = ServerHarness.Start(EchoServices());
        await using var peer = await harness.ConnectRawAsync();
        int length = FrameHeader.MaxDataLength + 10;
        var header = new byte[FrameHeader.Size];
        new FrameHeader((uint)length, 1, FrameType.Request, FrameFlagBits.None).Write(header);

        await peer.Stream.WriteAsync(header);
        await peer.Stream.WriteAsync(new byte[length]);
        var (id, response) = await peer.ReadResponseAsync();
        await peer.SendAsync(3, FrameType.Request, RawPeer.EncodeRequest(Echo, "Say", new StringValue { Value = "still here" }));
        var (nextId, next) = await peer.ReadResponseAsync();

        Assert.Equal(1u, id);
        Assert.Equal((int)StatusCode.ResourceExhausted, response.Status.Code);
        Assert.Equal($"message length {length} exceed maximum message size of 4194304", response.Status.Message);
        Assert.Equal(3u, nextId);
        Assert.Null(next.Status);
        Assert.Equal("still here", StringValue.Parser.ParseFrom(next.Payload).Value);
    }

    [Theory]
    [InlineData("foo", "Say", "service foo")]
    [InlineData(Echo, "Shout", "method Shout")]
    public async Task Unknown_service_or_method_is_Unimplemented(string service, string method, string expected)
    {
        await using var harness = ServerHarness.Start(EchoServices());
        await using var peer = await harness.ConnectRawAsync();

        await peer.SendAsync(1, FrameType.Request, RawPeer.EncodeRequest(service, method));
        var (_, response) = await peer.ReadResponseAsync();

        Assert.Equal(12, response.Status.Code);
        Assert.Equal(expected, response.Status.Message);
    }

    [Fact]
    public async Task Reused_stream_id_is_refused()
    {
        await using var harness = ServerHarness.Start(EchoServices());
        await using var peer = await harness.ConnectRawAsync();

        await peer.SendAsync(5, FrameType.Request, RawPeer.EncodeRequest(Echo, "Say"));
        await peer.ReadResponseAsync();
        await peer.SendAsync(5, FrameType.Request, RawPeer.EncodeRequest(Echo, "Say"));
        var (_, response) = await peer.ReadResponseAsync();

        Assert.Equal((int)StatusCode.InvalidArgument, response.Status.Code);
        Assert.Equal("StreamID cannot be re-used and must increment", response.Status.Message);
    }

    [Fact]
    public async Task Request_written_one_byte_at_a_time_is_answered()
    {
        await using var harness = ServerHarness.Start(EchoServices());
        await using var peer = await harness.ConnectRawAsync();
        byte[] body = RawPeer.EncodeRequest(Echo, "Say", new StringValue { Value = "slow" });
        var frame = new byte[FrameHeader.Size + body.Length];
        new FrameHeader((uint)body.Length, 1, FrameType.Request, FrameFlagBits.None).Write(frame);
        body.CopyTo(frame, FrameHeader.Size);

        foreach (byte b in frame)
        {
            await peer.Stream.WriteAsync(new[] { b });
            await peer.Stream.FlushAsync();
        }

        var (_, response) = await peer.ReadResponseAsync();
        Assert.Equal("slow", StringValue.Parser.ParseFrom(response.Payload).Value);
    }

    [Fact]
    public async Task Peer_closing_mid_frame_closes_only_that_connection()
    {
        await using var harness = ServerHarness.Start(EchoServices());
        await using (var peer = await harness.ConnectRawAsync())
        {
            var header = new byte[FrameHeader.Size];
            new FrameHeader(50, 1, FrameType.Request, FrameFlagBits.None).Write(header);
            await peer.Stream.WriteAsync(header);
            await peer.Stream.WriteAsync(new byte[10]);
            peer.Socket.Shutdown(SocketShutdown.Send);
            Assert.Null(await peer.Reader.ReadAsync(CancellationToken.None));
        }

        await using var client = await harness.ConnectClientAsync();
        var answer = await client.CallAsync(Echo, "Say", new StringValue { Value = "ok" }, StringValue.Parser);
        Assert.Equal("ok", answer.Value);
    }

    public static TheoryData<Exception, StatusCode> HandlerFailures => new()
    {
        { new TtrpcException(StatusCode.AlreadyExists, "x"), StatusCode.AlreadyExists },
        { new KeyNotFoundException("x"), StatusCode.NotFound },
        { new FileNotFoundException("x"), StatusCode.NotFound },
        { new ArgumentException("x"), StatusCode.InvalidArgument },
        { new InvalidOperationException("x"), StatusCode.FailedPrecondition },
        { new NotSupportedException("x"), StatusCode.Unimplemented },
        { new TimeoutException("x"), StatusCode.DeadlineExceeded },
        { new IOException("x"), StatusCode.Unknown },
    };

    [Theory]
    [MemberData(nameof(HandlerFailures))]
    public async Task Handler_exception_becomes_its_status(Exception failure, StatusCode expected)
    {
        var services = new TtrpcServiceRegistry().AddUnary(Echo, "Fail", (_, _) => Task.FromException<IMessage>(failure));
        await using var harness = ServerHarness.Start(services);
        await using var client = await harness.ConnectClientAsync();

        var e = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(Echo, "Fail", ReadOnlyMemory<byte>.Empty));

        Assert.Equal(expected, e.StatusCode);
        Assert.Equal("x", e.Message);
    }

    [Fact]
    public async Task Request_timeout_cancels_the_handler_and_answers_DeadlineExceeded()
    {
        var sawCancel = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var services = new TtrpcServiceRegistry().AddUnary(Echo, "Hang", async (_, context) =>
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.CancellationToken);
            }
            catch (OperationCanceledException)
            {
                sawCancel.SetResult(true);
                throw;
            }

            return new Empty();
        });
        await using var harness = ServerHarness.Start(services);
        await using var peer = await harness.ConnectRawAsync();

        await peer.SendAsync(1, FrameType.Request, RawPeer.EncodeRequest(Echo, "Hang", timeoutNano: 50_000_000));
        var (_, response) = await peer.ReadResponseAsync();

        Assert.True(await sawCancel.Task);
        Assert.Equal((int)StatusCode.DeadlineExceeded, response.Status.Code);
    }

    [Fact]
    public async Task Metadata_reaches_the_handler_with_lower_cased_keys()
    {
        TtrpcMetadata? seen = null;
        var services = new TtrpcServiceRegistry().AddUnary(Echo, "Meta", (_, context) =>
        {
            seen = context.Metadata;
            return Task.FromResult<IMessage>(new Empty());
        });
        await using var harness = ServerHarness.Start(services);
        await using var client = await harness.ConnectClientAsync();

        var metadata = new TtrpcMetadata().Add("Containerd-Namespace-Ttrpc", "ns1").Add("multi", "a").Add("MULTI", "b");
        await client.CallAsync(Echo, "Meta", ReadOnlyMemory<byte>.Empty, new Client.TtrpcCallOptions { Metadata = metadata });

        Assert.Equal("ns1", seen!.GetFirst("containerd-namespace-ttrpc"));
        Assert.Equal(new[] { "a", "b" }, seen.Get("multi"));
    }

    [Fact]
    public async Task Shutdown_lets_a_call_in_flight_finish_then_closes()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var services = new TtrpcServiceRegistry().AddUnary(Echo, "Slow", async (_, _) =>
        {
            entered.SetResult();
            await release.Task;
            return new StringValue { Value = "finished" };
        });
        await using var harness = ServerHarness.Start(services);
        await using var client = await harness.ConnectClientAsync();

        var call = client.CallAsync(Echo, "Slow", new Empty(), StringValue.Parser);
        await entered.Task;
        var shutdown = harness.Server.ShutdownAsync();
        Assert.False(shutdown.IsCompleted);
        release.SetResult();
        await shutdown;

        Assert.Equal("finished", (await call).Value);
        await client.Completion;
        await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(Echo, "Slow", new Empty(), StringValue.Parser));
    }

    [Fact]
    public async Task Streaming_call_receives_client_data_and_sends_data_back()
    {
        var services = new TtrpcServiceRegistry().AddStream(Echo, "Chat", async (stream, context) =>
        {
            while (await stream.ReceiveAsync(context.CancellationToken) is { } message)
            {
                var text = StringValue.Parser.ParseFrom(message.Span).Value;
                await stream.SendAsync(new StringValue { Value = text.ToUpperInvariant() }, context.CancellationToken);
            }
        });
        await using var harness = ServerHarness.Start(services);
        await using var peer = await harness.ConnectRawAsync();

        await peer.SendAsync(1, FrameType.Request, RawPeer.EncodeRequest(Echo, "Chat"), FrameFlagBits.RemoteOpen);
        await peer.SendAsync(1, FrameType.Data, new StringValue { Value = "a" }.ToByteArray());
        await peer.SendAsync(1, FrameType.Data, new StringValue { Value = "b" }.ToByteArray());
        await peer.SendAsync(1, FrameType.Data, [], FrameFlagBits.RemoteClosed | FrameFlagBits.NoData);

        var replies = new List<string>();
        while (true)
        {
            var frame = await peer.Reader.ReadAsync(CancellationToken.None);
            Assert.NotNull(frame);
            if (frame.Header.Type == FrameType.Response)
            {
                Assert.Null(Protocol.Response.Parser.ParseFrom(frame.Payload.Span).Status);
                break;
            }

            Assert.Equal(FrameType.Data, frame.Header.Type);
            replies.Add(StringValue.Parser.ParseFrom(frame.Payload.Span).Value);
        }

        Assert.Equal(new[] { "A", "B" }, replies);
    }

    [Fact]
    public async Task Same_user_peer_passes_the_credential_check()
    {
        await using var harness = ServerHarness.Start(EchoServices(), new TtrpcServerOptions { RequireSameUser = true });
        await using var client = await harness.ConnectClientAsync();

        var answer = await client.CallAsync(Echo, "Say", new StringValue { Value = "me" }, StringValue.Parser);

        Assert.Equal("me", answer.Value);
    }

    [Fact]
    public async Task Peer_credentials_name_this_process()
    {
        PeerCredentials? seen = null;
        var services = new TtrpcServiceRegistry().AddUnary(Echo, "Who", (_, context) =>
        {
            seen = context.Peer;
            return Task.FromResult<IMessage>(new Empty());
        });
        await using var harness = ServerHarness.Start(services);
        await using var client = await harness.ConnectClientAsync();

        await client.CallAsync(Echo, "Who", ReadOnlyMemory<byte>.Empty);

        Assert.Equal(Environment.ProcessId, seen!.Value.ProcessId);
        Assert.True(seen.Value.IsSameUserAsThisProcess());
    }
}
