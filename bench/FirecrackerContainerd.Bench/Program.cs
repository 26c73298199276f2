using System.Diagnostics;
using System.Net.Sockets;
using FirecrackerContainerd.Bench;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Ttrpc.Transport;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// Usage: ttrpc.sh [runs] [latency calls per run] [throughput calls per run] [concurrency] [payload bytes]
int runs = ArgOr(0, 5);
int latencyCalls = ArgOr(1, 5000);
int throughputCalls = ArgOr(2, 20000);
int concurrency = ArgOr(3, 32);
int payloadBytes = ArgOr(4, 64);
var payload = new EchoMessage { Payload = ByteString.CopyFrom(new byte[payloadBytes]) };

string dir = Directory.CreateTempSubdirectory("ttrpc-bench-").FullName;
try
{
    // ttrpc: our server and client over one Unix socket.
    string ttrpcPath = Path.Combine(dir, "ttrpc.sock");
    using var ttrpcListener = UnixSocketTransport.Listen(ttrpcPath);
    var registry = new TtrpcServiceRegistry().AddUnary("bench.Echo", "Say", EchoMessage.Parser, (m, _) => Task.FromResult(m));
    await using var ttrpcServer = new TtrpcServer(registry);
    _ = ttrpcServer.ServeAsync(ttrpcListener);
    await using var ttrpc = await TtrpcClient.ConnectUnixAsync(ttrpcPath, CancellationToken.None);
    Func<Task> ttrpcCall = () => ttrpc.CallAsync("bench.Echo", "Say", payload, EchoMessage.Parser);

    // gRPC: Kestrel with HTTP/2 on a Unix socket, Grpc.Net.Client over the same kind of socket.
    string grpcPath = Path.Combine(dir, "grpc.sock");
    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(grpcPath, l => l.Protocols = HttpProtocols.Http2));
    builder.Services.AddGrpc();
    await using var app = builder.Build();
    app.MapGrpcService<EchoService>();
    await app.StartAsync();
    using var channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(grpcPath), ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
        },
    });
    var grpc = new Echo.EchoClient(channel);
    Func<Task> grpcCall = () => grpc.SayAsync(payload).ResponseAsync;

    Console.WriteLine($"unary echo, {payloadBytes}-byte payload, Unix socket, {runs} runs; median of runs");
    var ttrpcLatency = await MedianAsync(runs, () => LatencyAsync(ttrpcCall, latencyCalls));
    var grpcLatency = await MedianAsync(runs, () => LatencyAsync(grpcCall, latencyCalls));
    Console.WriteLine($"latency p50 (sequential, {latencyCalls} calls/run): ttrpc {ttrpcLatency:F1} us, gRPC {grpcLatency:F1} us, gRPC/ttrpc = {grpcLatency / ttrpcLatency:F2}");
    var ttrpcRate = await MedianAsync(runs, () => ThroughputAsync(ttrpcCall, throughputCalls, concurrency));
    var grpcRate = await MedianAsync(runs, () => ThroughputAsync(grpcCall, throughputCalls, concurrency));
    Console.WriteLine($"throughput ({concurrency} concurrent callers, one connection, {throughputCalls} calls/run): ttrpc {ttrpcRate:F0} calls/s, gRPC {grpcRate:F0} calls/s, ttrpc/gRPC = {ttrpcRate / grpcRate:F2}");
    await app.StopAsync();
}
finally
{
    Directory.Delete(dir, recursive: true);
}

int ArgOr(int index, int fallback) => args.Length > index ? int.Parse(args[index], System.Globalization.CultureInfo.InvariantCulture) : fallback;

static async Task<double> MedianAsync(int runs, Func<Task<double>> run)
{
    await run(); // warm-up: JIT, connections
    var results = new List<double>();
    for (int i = 0; i < runs; i++)
    {
        results.Add(await run());
    }

    results.Sort();
    return results[results.Count / 2];
}

static async Task<double> LatencyAsync(Func<Task> call, int calls)
{
    var samples = new double[calls];
    for (int i = 0; i < calls; i++)
    {
        long start = Stopwatch.GetTimestamp();
        await call();
        samples[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }

    Array.Sort(samples);
    return samples[calls / 2];
}

static async Task<double> ThroughputAsync(Func<Task> call, int calls, int concurrency)
{
    int remaining = calls;
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
    {
        while (Interlocked.Decrement(ref remaining) >= 0)
        {
            await call();
        }
    }));
    return calls / clock.Elapsed.TotalSeconds;
}

/// <summary>The gRPC side of the echo service.</summary>
internal sealed class EchoService : Echo.EchoBase
{
    public override Task<EchoMessage> Say(EchoMessage request, ServerCallContext context) => Task.FromResult(request);
}
