using System.Diagnostics;
using FirecrackerContainerd.Control.Shims;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Control.Service;

/// <summary>
/// The "Firecracker" service as the daemon serves it: CreateVM launches the VM's shim and forwards the call to it;
/// every other call is forwarded to the shim serving (namespace, VM id), and its answer checked before it is returned.
/// </summary>
public sealed partial class FirecrackerForwarder
{
    /// <summary>StopVM's timeout when the request gives none.</summary>
    public static readonly TimeSpan DefaultStopTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long a killed shim may take to disappear.</summary>
    private static readonly TimeSpan KillWait = TimeSpan.FromSeconds(5);

    /// <summary>Added to CreateVM's own timeout, so that the shim reports its timeout before the daemon gives up.</summary>
    private static readonly TimeSpan CreateMargin = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long beyond StopVM's timeout a shim may take to exit before it is killed: a shim whose VM stopped under tasks
    /// that a client waits for (ctr run --rm, the CRI plugin) waits up to 10 s for that client to delete them (so that
    /// the deletes get their exit statuses from it), and then a few seconds to leave.
    /// </summary>
    private static readonly TimeSpan StopMargin = TimeSpan.FromSeconds(15);

    private readonly VmRegistry _vms;
    private readonly ILogger _logger;

    /// <summary>Creates the forwarder over <paramref name="vms"/>.</summary>
    public FirecrackerForwarder(VmRegistry vms, ILogger logger)
    {
        _vms = vms;
        _logger = logger;
    }

    /// <summary>Adds every method of the service to <paramref name="registry"/>.</summary>
    public TtrpcServiceRegistry Register(TtrpcServiceRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        const string S = ServiceNames.Firecracker;
        return registry
            .AddUnary<CreateVMRequest, CreateVMResponse>(S, "CreateVM", CreateVMRequest.Parser, CreateVmAsync)
            .AddUnary<StopVMRequest, Empty>(S, "StopVM", StopVMRequest.Parser, StopVmAsync)
            .AddUnary<PauseVMRequest, Empty>(S, "PauseVM", PauseVMRequest.Parser,
                (r, c) => ForwardAsync(c, "PauseVM", r.VMID, r, Empty.Parser))
            .AddUnary<ResumeVMRequest, Empty>(S, "ResumeVM", ResumeVMRequest.Parser,
                (r, c) => ForwardAsync(c, "ResumeVM", r.VMID, r, Empty.Parser))
            .AddUnary<GetVMInfoRequest, GetVMInfoResponse>(S, "GetVMInfo", GetVMInfoRequest.Parser,
                (r, c) => ForwardAsync(c, "GetVMInfo", r.VMID, r, GetVMInfoResponse.Parser, a => ShimAnswerValidation.Check(a, r.VMID)))
            .AddUnary<SetVMMetadataRequest, Empty>(S, "SetVMMetadata", SetVMMetadataRequest.Parser,
                (r, c) => ForwardAsync(c, "SetVMMetadata", r.VMID, CheckedMetadata(r, r.Metadata), Empty.Parser))
            .AddUnary<UpdateVMMetadataRequest, Empty>(S, "UpdateVMMetadata", UpdateVMMetadataRequest.Parser,
                (r, c) => ForwardAsync(c, "UpdateVMMetadata", r.VMID, CheckedMetadata(r, r.Metadata), Empty.Parser))
            .AddUnary<GetVMMetadataRequest, GetVMMetadataResponse>(S, "GetVMMetadata", GetVMMetadataRequest.Parser,
                (r, c) => ForwardAsync(c, "GetVMMetadata", r.VMID, r, GetVMMetadataResponse.Parser, ShimAnswerValidation.Check))
            .AddUnary<GetBalloonConfigRequest, GetBalloonConfigResponse>(S, "GetBalloonConfig", GetBalloonConfigRequest.Parser,
                (r, c) => ForwardAsync(c, "GetBalloonConfig", r.VMID, r, GetBalloonConfigResponse.Parser))
            .AddUnary<UpdateBalloonRequest, Empty>(S, "UpdateBalloon", UpdateBalloonRequest.Parser,
                (r, c) => ForwardAsync(c, "UpdateBalloon", r.VMID, r, Empty.Parser))
            .AddUnary<GetBalloonStatsRequest, GetBalloonStatsResponse>(S, "GetBalloonStats", GetBalloonStatsRequest.Parser,
                (r, c) => ForwardAsync(c, "GetBalloonStats", r.VMID, r, GetBalloonStatsResponse.Parser, ShimAnswerValidation.Check))
            .AddUnary<UpdateBalloonStatsRequest, Empty>(S, "UpdateBalloonStats", UpdateBalloonStatsRequest.Parser,
                (r, c) => ForwardAsync(c, "UpdateBalloonStats", r.VMID, r, Empty.Parser));
    }

    private async Task<CreateVMResponse> CreateVmAsync(CreateVMRequest request, TtrpcCallContext call)
    {
        var endpoint = _vms.Endpoint(call, request.VMID);
        using var held = await _vms.LockAsync(endpoint, call.CancellationToken).ConfigureAwait(false);
        if (await endpoint.AnswersAsync(call.CancellationToken).ConfigureAwait(false))
        {
            throw new TtrpcException(StatusCode.AlreadyExists, $"vm {endpoint.VmId} in namespace {endpoint.Namespace} already exists (its shim serves on {endpoint.SocketPath})");
        }

        var bundle = _vms.Bundle(endpoint);
        try
        {
            bundle.Create(endpoint.VmId);
            await _vms.Launcher.StartAsync(endpoint, bundle, call.CancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await _vms.ForgetAsync(endpoint, CancellationToken.None).ConfigureAwait(false);
            throw new TtrpcException(StatusCode.Internal, $"create vm {endpoint.VmId} in namespace {endpoint.Namespace}: {e.Message}", e);
        }
        catch (OperationCanceledException)
        {
            await _vms.ForgetAsync(endpoint, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        LogLaunched(_logger, endpoint.VmId, endpoint.Namespace, bundle.RootPath);
        TimeSpan? timeout = request.TimeoutSeconds > 0 ? TimeSpan.FromSeconds(request.TimeoutSeconds) + CreateMargin : null;
        try
        {
            return await ForwardAsync(call, "CreateVM", endpoint.VmId, request, CreateVMResponse.Parser,
                a => ShimAnswerValidation.Check(a, endpoint.VmId), timeout).ConfigureAwait(false);
        }
        catch (TtrpcException)
        {
            // A shim whose VM failed to come up exits; forget it then, but keep one that still serves (it reports why).
            if (!await endpoint.AnswersAsync(CancellationToken.None).ConfigureAwait(false))
            {
                await _vms.ForgetAsync(endpoint, CancellationToken.None).ConfigureAwait(false);
            }

            throw;
        }
    }

    private async Task<Empty> StopVmAsync(StopVMRequest request, TtrpcCallContext call)
    {
        var endpoint = _vms.Endpoint(call, request.VMID);
        using var held = await _vms.LockAsync(endpoint, call.CancellationToken).ConfigureAwait(false);
        // The shim gives the guest the request's timeout to power off and then kills its VMM; the shim itself
        // gets a margin beyond that to report the exits and leave before it is killed.
        TimeSpan timeout = (request.TimeoutSeconds > 0 ? TimeSpan.FromSeconds(request.TimeoutSeconds) : DefaultStopTimeout) + StopMargin;
        var clock = Stopwatch.StartNew();
        var (client, process) = await ConnectAsync(endpoint, call.CancellationToken).ConfigureAwait(false);
        TtrpcException? failure = null;
        await using (client.ConfigureAwait(false))
        {
            try
            {
                await client.CallAsync(ServiceNames.Firecracker, "StopVM", request, Empty.Parser,
                    new TtrpcCallOptions { Timeout = timeout, Metadata = CallNamespace.For(endpoint.Namespace) },
                    call.CancellationToken).ConfigureAwait(false);
            }
            catch (TtrpcException e)
            {
                failure = e;
            }
        }

        if (await ExitedAsync(endpoint, process, timeout - clock.Elapsed, call.CancellationToken).ConfigureAwait(false))
        {
            await _vms.ForgetAsync(endpoint, CancellationToken.None).ConfigureAwait(false);
            LogStopped(_logger, endpoint.VmId, endpoint.Namespace);
            return new Empty();
        }

        if (process is null || process.ProcessId == Environment.ProcessId)
        {
            throw new TtrpcException(StatusCode.DeadlineExceeded,
                $"stop vm {endpoint.VmId} in namespace {endpoint.Namespace}: the shim did not exit within {timeout.TotalSeconds:0} s and its pid is unknown" +
                (failure is null ? "" : $" ({failure.StatusCode}: {failure.Message})"));
        }

        LogKilling(_logger, endpoint.VmId, endpoint.Namespace, process.ProcessId, timeout.TotalSeconds, failure?.Message ?? "no error");
        process.Kill();
        if (!await process.WaitForExitAsync(KillWait, CancellationToken.None).ConfigureAwait(false))
        {
            throw new TtrpcException(StatusCode.Internal, $"stop vm {endpoint.VmId} in namespace {endpoint.Namespace}: shim pid {process.ProcessId} survived SIGKILL for {KillWait.TotalSeconds:0} s");
        }

        await _vms.ForgetAsync(endpoint, CancellationToken.None).ConfigureAwait(false);
        return new Empty();
    }

    /// <summary>Waits up to <paramref name="limit"/> for the shim to exit: its process gone, or its socket no longer answering.</summary>
    private static async Task<bool> ExitedAsync(ShimEndpoint endpoint, ShimProcess? process, TimeSpan limit, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            bool processGone = process is not null && process.ProcessId != Environment.ProcessId && !process.IsRunning;
            if (processGone || !await endpoint.AnswersAsync(cancellationToken).ConfigureAwait(false))
            {
                return true;
            }

            if (clock.Elapsed >= limit)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Whether a shim that dropped a call is gone: its process has exited, or nothing answers on its socket.
    /// The exit can trail the dropped connection by a moment (the socket answers until then), so it is awaited briefly.
    /// </summary>
    private static async Task<bool> GoneAsync(ShimEndpoint endpoint, ShimProcess? process)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (process is { IsRunning: false } || !await endpoint.AnswersAsync(CancellationToken.None).ConfigureAwait(false))
            {
                return true;
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(2))
            {
                return false;
            }

            await Task.Delay(50).ConfigureAwait(false);
        }
    }

    private async Task<TResponse> ForwardAsync<TResponse>(
        TtrpcCallContext call, string method, string vmId, IMessage request, MessageParser<TResponse> parser,
        Action<TResponse>? check = null, TimeSpan? timeout = null)
        where TResponse : IMessage<TResponse>
    {
        var endpoint = _vms.Endpoint(call, vmId);
        var (client, process) = await ConnectAsync(endpoint, call.CancellationToken).ConfigureAwait(false);
        TResponse answer;
        await using (client.ConfigureAwait(false))
        {
            try
            {
                answer = await client.CallAsync(ServiceNames.Firecracker, method, request, parser,
                    new TtrpcCallOptions { Timeout = timeout, Metadata = CallNamespace.For(endpoint.Namespace) },
                    call.CancellationToken).ConfigureAwait(false);
            }
            catch (TtrpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown)
            {
                if (await GoneAsync(endpoint, process).ConfigureAwait(false))
                {
                    await _vms.ForgetAsync(endpoint, CancellationToken.None).ConfigureAwait(false);
                    throw new TtrpcException(StatusCode.Unavailable,
                        $"{method} vm {vmId} in namespace {endpoint.Namespace}: the shim exited during the call ({e.Message}); the vm is gone", e);
                }

                throw new TtrpcException(e.StatusCode, $"{method} vm {vmId} in namespace {endpoint.Namespace}: {e.Message}", e);
            }
            catch (TtrpcException e)
            {
                throw new TtrpcException(e.StatusCode, $"{method} vm {vmId} in namespace {endpoint.Namespace}: {e.Message}", e);
            }
        }

        try
        {
            check?.Invoke(answer);
        }
        catch (InvalidDataException e)
        {
            LogBadAnswer(_logger, endpoint.VmId, endpoint.Namespace, method, e.Message);
            throw new TtrpcException(StatusCode.Internal, $"{method} vm {vmId} in namespace {endpoint.Namespace}: the shim's answer is invalid: {e.Message}", e);
        }

        return answer;
    }

    private static async Task<(TtrpcClient Client, ShimProcess? Process)> ConnectAsync(ShimEndpoint endpoint, CancellationToken cancellationToken)
    {
        if (!await endpoint.AnswersAsync(cancellationToken).ConfigureAwait(false))
        {
            throw NotFound(endpoint);
        }

        try
        {
            return await endpoint.ConnectAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new TtrpcException(StatusCode.NotFound, NotFound(endpoint).Message, e);
        }
    }

    private static TtrpcException NotFound(ShimEndpoint endpoint) =>
        new(StatusCode.NotFound, $"vm {endpoint.VmId} not found in namespace {endpoint.Namespace} (no shim serves on {endpoint.SocketPath})");

    private static T CheckedMetadata<T>(T request, string metadata)
    {
        try
        {
            ShimAnswerValidation.CheckJson(metadata, "metadata");
        }
        catch (InvalidDataException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, e.Message, e);
        }

        return request;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "launched shim for vm {VmId} in namespace {Namespace}, bundle {Bundle}")]
    private static partial void LogLaunched(ILogger logger, string vmId, string @namespace, string bundle);

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId} in namespace {Namespace} stopped")]
    private static partial void LogStopped(ILogger logger, string vmId, string @namespace);

    [LoggerMessage(Level = LogLevel.Warning, Message = "killing shim pid {Pid} of vm {VmId} in namespace {Namespace}: not exited within {Seconds} s ({Reason})")]
    private static partial void LogKilling(ILogger logger, string vmId, string @namespace, int pid, double seconds, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "shim of vm {VmId} in namespace {Namespace} answered {Method} with an invalid message: {Reason}")]
    private static partial void LogBadAnswer(ILogger logger, string vmId, string @namespace, string method, string reason);
}
