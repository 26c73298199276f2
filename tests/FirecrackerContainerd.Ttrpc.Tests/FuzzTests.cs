using System.Diagnostics;
using System.Net.Sockets;
using FirecrackerContainerd.Ttrpc.Framing;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Ttrpc.Tests;

public class FuzzTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ClientBudget = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task Random_and_mutated_frames_never_hang_or_kill_the_server()
    {
        var services = ServerTests.EchoServices().AddStream(ServerTests.Echo, "Chat", async (stream, context) =>
        {
            while (await stream.ReceiveAsync(context.CancellationToken) is { } message)
            {
                await stream.SendAsync(new BytesValue { Value = Google.Protobuf.ByteString.CopyFrom(message.Span) }, context.CancellationToken);
            }
        });
        await using var harness = ServerHarness.Start(services);
        var random = new Random(FuzzSeed.Choose(output, 20261127));
        byte[][] valid =
        [
            RawPeer.EncodeRequest(ServerTests.Echo, "Say", new StringValue { Value = "fuzz" }),
            RawPeer.EncodeRequest(ServerTests.Echo, "Chat", new StringValue { Value = "stream" }),
        ];
        var clock = Stopwatch.StartNew();
        int connections = 0;

        while (clock.Elapsed < Budget)
        {
            connections++;
            await using var peer = await harness.ConnectRawAsync();
            int frames = random.Next(1, 8);
            for (int f = 0; f < frames; f++)
            {
                await peer.Stream.WriteAsync(MakeFrame(random, valid[random.Next(valid.Length)]));
            }

            // Whatever we sent, closing our side must make the server answer and then close, never hang.
            peer.Socket.Shutdown(SocketShutdown.Send);
            using var liveness = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                while (await peer.Reader.ReadAsync(liveness.Token) is not null)
                {
                }
            }
            catch (TtrpcProtocolException)
            {
                // The server closed while we were mid-frame of its answer: closed counts.
            }
            catch (IOException)
            {
                // Reset by the server: closed counts.
            }
        }

        await using var client = await harness.ConnectClientAsync();
        var answer = await client.CallAsync(ServerTests.Echo, "Say", new StringValue { Value = "alive" }, StringValue.Parser);
        Assert.Equal("alive", answer.Value);
        Assert.True(connections > 1);
    }

    [Fact]
    public async Task Client_survives_a_server_answering_with_random_and_mutated_frames()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "hostile.sock");
        using var listener = FirecrackerContainerd.Ttrpc.Transport.UnixSocketTransport.Listen(path);
        var random = new Random(FuzzSeed.Choose(output, 1127));
        byte[] goodAnswer = new Protocol.Response { Payload = new StringValue { Value = "ok" }.ToByteString() }.ToByteArray();
        using var stop = new CancellationTokenSource();
        var hostile = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                Socket accepted;
                try
                {
                    accepted = await listener.AcceptAsync(stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                using (accepted)
                await using (var stream = new NetworkStream(accepted))
                {
                    var reader = new FrameReader(stream);
                    try
                    {
                        while (await reader.ReadAsync(stop.Token) is { } request)
                        {
                            // Sometimes the right id, sometimes another; sometimes garbage, sometimes a truncated frame.
                            byte[] frame = MakeFrame(random, goodAnswer);
                            if (random.Next(3) == 0)
                            {
                                new FrameHeader((uint)(frame.Length - FrameHeader.Size), request.Header.StreamId, FrameType.Response, FrameFlagBits.None)
                                    .Write(frame);
                            }

                            await stream.WriteAsync(frame, stop.Token);
                        }
                    }
                    catch (Exception e) when (e is IOException or OperationCanceledException or TtrpcProtocolException)
                    {
                    }
                }
            }
        });

        var clock = Stopwatch.StartNew();
        int answered = 0;
        int refused = 0;
        while (clock.Elapsed < ClientBudget)
        {
            await using var client = await FirecrackerContainerd.Ttrpc.Client.TtrpcClient.ConnectUnixAsync(path, CancellationToken.None);
            for (int i = 0; i < 5; i++)
            {
                try
                {
                    await client.CallAsync(ServerTests.Echo, "Say", new StringValue { Value = "q" }, StringValue.Parser,
                        new FirecrackerContainerd.Ttrpc.Client.TtrpcCallOptions { Timeout = TimeSpan.FromMilliseconds(200) });
                    answered++;
                }
                catch (TtrpcException)
                {
                    // Every hostile answer must surface as a status, nothing else.
                    refused++;
                }
            }
        }

        await stop.CancelAsync();
        await hostile;
        Assert.True(answered + refused > 5);
    }

    private static byte[] MakeFrame(Random random, byte[] valid)
    {
        byte[] body;
        switch (random.Next(4))
        {
            case 0:
                body = new byte[random.Next(0, 256)];
                random.NextBytes(body);
                break;
            case 1:
                body = (byte[])valid.Clone();
                for (int i = random.Next(1, 4); i > 0; i--)
                {
                    body[random.Next(body.Length)] = (byte)random.Next(256);
                }

                break;
            case 2:
                body = valid[..random.Next(valid.Length)];
                break;
            default:
                body = valid;
                break;
        }

        uint announced = random.Next(6) switch
        {
            0 => (uint)random.Next(),
            1 => (uint)(body.Length + random.Next(1, 100)),
            _ => (uint)body.Length,
        };
        var header = new FrameHeader(announced, (uint)random.Next(0, 64), (FrameType)random.Next(0, 5), (FrameFlagBits)random.Next(0, 8));
        var frame = new byte[FrameHeader.Size + body.Length];
        header.Write(frame);
        body.CopyTo(frame, FrameHeader.Size);
        return frame;
    }
}
