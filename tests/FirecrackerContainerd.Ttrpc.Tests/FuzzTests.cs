using System.Diagnostics;
using System.Net.Sockets;
using FirecrackerContainerd.Ttrpc.Framing;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Ttrpc.Tests;

public class FuzzTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Random_and_mutated_frames_never_hang_or_kill_the_server()
    {
        await using var harness = ServerHarness.Start(ServerTests.EchoServices());
        var random = new Random(20261127);
        byte[] valid = RawPeer.EncodeRequest(ServerTests.Echo, "Say", new StringValue { Value = "fuzz" });
        var clock = Stopwatch.StartNew();
        int connections = 0;

        while (clock.Elapsed < Budget)
        {
            connections++;
            await using var peer = await harness.ConnectRawAsync();
            int frames = random.Next(1, 8);
            for (int f = 0; f < frames; f++)
            {
                await peer.Stream.WriteAsync(MakeFrame(random, valid));
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
