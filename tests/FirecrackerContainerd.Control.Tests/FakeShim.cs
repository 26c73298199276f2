using System.Collections.Concurrent;
using System.Net.Sockets;
using FirecrackerContainerd.Control.Service;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Control.Tests;

/// <summary>A shim stand-in in this process: our ttrpc server serving "Firecracker" on the path the daemon computes, recording calls.</summary>
public sealed class FakeShim : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly TtrpcServer _server;
    private int _stopped;

    private FakeShim(string path, string vmId, Socket listener, TtrpcServer server)
    {
        SocketPath = path;
        VmId = vmId;
        _listener = listener;
        _server = server;
    }

    public string SocketPath { get; }

    public string VmId { get; }

    /// <summary>"method ns vmid" per call received.</summary>
    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>When set, GetVMInfo names another VM (a misbehaving shim).</summary>
    public bool AnswerWrongVm { get; set; }

    /// <summary>The run state GetVMInfo reports.</summary>
    public string State { get; set; } = "Running";

    public string Metadata { get; set; } = "{}";

    /// <summary>The last CreateVM request received.</summary>
    public CreateVMRequest? LastCreate { get; private set; }

    /// <summary>How long CreateVM takes to answer (a booting VM).</summary>
    public TimeSpan CreateDelay { get; set; }

    /// <summary>The balloon target UpdateBalloon sets and GetBalloonConfig reports.</summary>
    public long BalloonMib { get; set; }

    public static async Task<FakeShim> StartAsync(string path, string vmId)
    {
        var listener = await ShimSocket.BindAsync(path, CancellationToken.None);
        FakeShim? shim = null;
        var registry = new TtrpcServiceRegistry();
        const string S = ServiceNames.Firecracker;
        registry
            .AddUnary<CreateVMRequest, CreateVMResponse>(S, "CreateVM", CreateVMRequest.Parser, async (r, c) =>
            {
                shim!.Record("CreateVM", c, r.VMID + $" vcpus={r.MachineCfg?.VcpuCount ?? 0} exit={r.ExitAfterAllTasksDeleted}");
                shim.LastCreate = r;
                await Task.Delay(shim.CreateDelay);
                return new CreateVMResponse { VMID = r.VMID, SocketPath = "/run/vm/firecracker.sock" };
            })
            .AddUnary<StopVMRequest, Empty>(S, "StopVM", StopVMRequest.Parser, (r, c) =>
            {
                shim!.Record("StopVM", c, r.VMID);
                _ = Task.Run(shim.DisposeAsync);
                return Task.FromResult(new Empty());
            })
            .AddUnary<PauseVMRequest, Empty>(S, "PauseVM", PauseVMRequest.Parser, (r, c) => shim!.Done("PauseVM", c, r.VMID))
            .AddUnary<ResumeVMRequest, Empty>(S, "ResumeVM", ResumeVMRequest.Parser, (r, c) => shim!.Done("ResumeVM", c, r.VMID))
            .AddUnary<GetVMInfoRequest, GetVMInfoResponse>(S, "GetVMInfo", GetVMInfoRequest.Parser, (r, c) =>
            {
                shim!.Record("GetVMInfo", c, r.VMID);
                return Task.FromResult(new GetVMInfoResponse { VMID = shim.AnswerWrongVm ? "other" : r.VMID, VSockPath = "/run/vm/firecracker.vsock", State = shim.State });
            })
            .AddUnary<SetVMMetadataRequest, Empty>(S, "SetVMMetadata", SetVMMetadataRequest.Parser, (r, c) =>
            {
                shim!.Metadata = r.Metadata;
                return shim.Done("SetVMMetadata", c, r.VMID);
            })
            .AddUnary<UpdateVMMetadataRequest, Empty>(S, "UpdateVMMetadata", UpdateVMMetadataRequest.Parser, (r, c) => shim!.Done("UpdateVMMetadata", c, r.VMID))
            .AddUnary<GetVMMetadataRequest, GetVMMetadataResponse>(S, "GetVMMetadata", GetVMMetadataRequest.Parser, (r, c) =>
            {
                shim!.Record("GetVMMetadata", c, r.VMID);
                return Task.FromResult(new GetVMMetadataResponse { Metadata = shim.Metadata });
            })
            .AddUnary<GetBalloonStatsRequest, GetBalloonStatsResponse>(S, "GetBalloonStats", GetBalloonStatsRequest.Parser, (r, c) =>
            {
                shim!.Record("GetBalloonStats", c, r.VMID);
                return Task.FromResult(new GetBalloonStatsResponse { ActualMib = 64, TargetMib = shim.BalloonMib, TotalMemory = 200L << 20 });
            })
            .AddUnary<GetBalloonConfigRequest, GetBalloonConfigResponse>(S, "GetBalloonConfig", GetBalloonConfigRequest.Parser, (r, c) =>
            {
                shim!.Record("GetBalloonConfig", c, r.VMID);
                return Task.FromResult(new GetBalloonConfigResponse { BalloonConfig = new FirecrackerBalloonDevice { AmountMib = shim.BalloonMib, StatsPollingIntervals = 1 } });
            })
            .AddUnary<UpdateBalloonRequest, Empty>(S, "UpdateBalloon", UpdateBalloonRequest.Parser, (r, c) =>
            {
                shim!.BalloonMib = r.AmountMib;
                return shim.Done("UpdateBalloon", c, r.VMID);
            })
            .AddUnary<UpdateBalloonStatsRequest, Empty>(S, "UpdateBalloonStats", UpdateBalloonStatsRequest.Parser, (r, c) =>
                shim!.Done("UpdateBalloonStats", c, $"{r.VMID} every={r.StatsPollingIntervals}"));
        var server = new TtrpcServer(registry);
        shim = new FakeShim(path, vmId, listener, server);
        _ = server.ServeAsync(listener);
        return shim;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        await _server.DisposeAsync();
        _listener.Dispose();
        ShimSocket.Remove(SocketPath);
    }

    private void Record(string method, TtrpcCallContext call, string detail) =>
        Calls.Enqueue($"{method} {call.Metadata.GetFirst(CallNamespace.MetadataKey)} {detail}");

    private Task<Empty> Done(string method, TtrpcCallContext call, string vmId)
    {
        Record(method, call, vmId);
        return Task.FromResult(new Empty());
    }
}
