using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Ttrpc.Tests;

public class StreamTests
{
    private const string Echo = ServerTests.Echo;

    private static TtrpcServiceRegistry StreamServices() => new TtrpcServiceRegistry()
        .AddStream(Echo, "Upper", async (stream, context) =>
        {
            while (await stream.ReceiveAsync(context.CancellationToken) is { } message)
            {
                string text = StringValue.Parser.ParseFrom(message.Span).Value;
                await stream.SendAsync(new StringValue { Value = text.ToUpperInvariant() }, context.CancellationToken);
            }
        })
        .AddStream(Echo, "Count", async (stream, context) =>
        {
            var first = await stream.ReceiveAsync(context.CancellationToken);
            int n = Int32Value.Parser.ParseFrom(first!.Value.Span).Value;
            for (int i = 0; i < n; i++)
            {
                await stream.SendAsync(new Int32Value { Value = i }, context.CancellationToken);
            }
        })
        .AddStream(Echo, "Refuse", (_, _) => throw new TtrpcException(StatusCode.PermissionDenied, "not you"));

    [Fact]
    public async Task Client_sends_messages_and_receives_answers_until_the_server_ends_the_stream()
    {
        await using var harness = ServerHarness.Start(StreamServices());
        await using var client = await harness.ConnectClientAsync();
        await using var call = await client.OpenStreamAsync(Echo, "Upper", request: null, clientSends: true);

        await call.SendAsync(new StringValue { Value = "ab" });
        await call.SendAsync(new StringValue { Value = "cd" });
        await call.CloseSendAsync();
        var answers = new List<string>();
        while (await call.ReceiveAsync() is { } message)
        {
            answers.Add(StringValue.Parser.ParseFrom(message.Span).Value);
        }

        Assert.Equal(new[] { "AB", "CD" }, answers);
    }

    [Fact]
    public async Task Server_streams_many_answers_to_one_request()
    {
        await using var harness = ServerHarness.Start(StreamServices());
        await using var client = await harness.ConnectClientAsync();
        await using var call = await client.OpenStreamAsync(Echo, "Count", new Int32Value { Value = 5 }, clientSends: false);

        var answers = new List<int>();
        while (await call.ReceiveAsync() is { } message)
        {
            answers.Add(Int32Value.Parser.ParseFrom(message.Span).Value);
        }

        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, answers);
    }

    [Fact]
    public async Task Stream_ending_with_an_error_status_throws_it()
    {
        await using var harness = ServerHarness.Start(StreamServices());
        await using var client = await harness.ConnectClientAsync();
        await using var call = await client.OpenStreamAsync(Echo, "Refuse", new Empty(), clientSends: false);

        var e = await Assert.ThrowsAsync<TtrpcException>(async () => await call.ReceiveAsync());

        Assert.Equal(StatusCode.PermissionDenied, e.StatusCode);
        Assert.Equal("not you", e.Message);
    }

    [Fact]
    public async Task Streams_and_unary_calls_share_one_connection()
    {
        await using var harness = ServerHarness.Start(StreamServices().AddUnary(Echo, "Say", StringValue.Parser,
            (m, _) => Task.FromResult(m)));
        await using var client = await harness.ConnectClientAsync();
        await using var call = await client.OpenStreamAsync(Echo, "Upper", request: null, clientSends: true);

        await call.SendAsync(new StringValue { Value = "x" });
        var unary = await client.CallAsync(Echo, "Say", new StringValue { Value = "y" }, StringValue.Parser);
        var streamed = await call.ReceiveAsync();
        await call.CloseSendAsync();

        Assert.Equal("y", unary.Value);
        Assert.Equal("X", StringValue.Parser.ParseFrom(streamed!.Value.Span).Value);
        Assert.Null(await call.ReceiveAsync());
    }
}
