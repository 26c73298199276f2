using System.Net.Sockets;
using FirecrackerContainerd.Protos.FcControl;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace FirecrackerContainerd.Control.Tests;

/// <summary>The daemon's API over gRPC (HTTP/2 on its second Unix socket), with a stock gRPC client.</summary>
public sealed class GrpcGatewayTests : IAsyncLifetime
{
    private readonly ControlHarness _h = new();
    private GrpcChannel? _channel;

    public async Task InitializeAsync()
    {
        await _h.InitializeAsync();
        string socket = _h.Options.GrpcSocketPath;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var unix = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await unix.ConnectAsync(new UnixDomainSocketEndPoint(socket), cancellationToken);
                return new NetworkStream(unix, ownsSocket: true);
            },
        };
        _channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = handler });
    }

    public async Task DisposeAsync()
    {
        _channel?.Dispose();
        await _h.DisposeAsync();
    }

    [Fact]
    public async Task Calls_over_gRPC_reach_the_shim_with_the_callers_namespace()
    {
        var shim = await _h.StartShimAsync("ns1", "vm1");

        GetVMInfoResponse info = await CallAsync<GetVMInfoRequest, GetVMInfoResponse>("GetVMInfo", new GetVMInfoRequest { VMID = "vm1" }, "ns1");

        Assert.Equal("vm1", info.VMID);
        Assert.Equal("/run/vm/firecracker.vsock", info.VSockPath);
        Assert.Equal(["GetVMInfo ns1 vm1"], shim.Calls.ToArray());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_h.Options.GrpcSocketPath));
    }

    [Fact]
    public async Task Errors_over_gRPC_carry_the_same_status_codes_and_messages()
    {
        var unknown = await Assert.ThrowsAsync<RpcException>(() =>
            CallAsync<GetVMInfoRequest, GetVMInfoResponse>("GetVMInfo", new GetVMInfoRequest { VMID = "nope" }, "ns1"));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("nope", unknown.Status.Detail, StringComparison.Ordinal);

        var bad = await Assert.ThrowsAsync<RpcException>(() =>
            CallAsync<GetVMInfoRequest, GetVMInfoResponse>("GetVMInfo", new GetVMInfoRequest { VMID = "bad/id" }, "ns1"));
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);

        var missing = await Assert.ThrowsAsync<RpcException>(() =>
            CallAsync<GetVMInfoRequest, GetVMInfoResponse>("NoSuchMethod", new GetVMInfoRequest { VMID = "vm1" }, "ns1"));
        Assert.Equal(StatusCode.Unimplemented, missing.StatusCode);
    }

    private async Task<TResponse> CallAsync<TRequest, TResponse>(string method, TRequest request, string ns)
        where TRequest : class, IMessage<TRequest>, new()
        where TResponse : class, IMessage<TResponse>, new()
    {
        var call = new Method<TRequest, TResponse>(
            MethodType.Unary, "Firecracker", method,
            Marshallers.Create(m => m.ToByteArray(), b => new MessageParser<TRequest>(() => new TRequest()).ParseFrom(b)),
            Marshallers.Create(m => m.ToByteArray(), b => new MessageParser<TResponse>(() => new TResponse()).ParseFrom(b)));
        var headers = new Metadata { { "containerd-namespace", ns } };
        return await _channel!.CreateCallInvoker().AsyncUnaryCall(call, null, new CallOptions(headers, DateTime.UtcNow.AddSeconds(20)), request);
    }
}
