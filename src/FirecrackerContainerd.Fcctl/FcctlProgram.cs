using System.CommandLine;
using System.Globalization;
using FirecrackerContainerd.Control.Protos;
using FirecrackerContainerd.Control.Service;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Fcctl;

/// <summary>fcctl's commands: each one call to the firecracker-control daemon, printed for people or as JSON.</summary>
public static class FcctlProgram
{
    private static readonly JsonFormatter Json = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    /// <summary>Runs fcctl with <paramref name="args"/>, writing to the given streams; returns the exit code (<see cref="ExitCodes"/>).</summary>
    /// <param name="stderrIsTerminal">Whether slow calls show their progress on <paramref name="stderr"/> by default.</param>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken, bool stderrIsTerminal = false)
    {
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        var socket = new Option<string?>("--socket") { Description = "the daemon's socket", Recursive = true };
        var ns = new Option<string?>("--namespace", "-n") { Description = "containerd namespace", Recursive = true };
        var json = new Option<bool>("--json") { Description = "print the answer as JSON", Recursive = true };
        var config = new Option<string?>("--config") { Description = $"defaults file (default {FcctlConfig.DefaultPath})", Recursive = true };
        var progress = new Option<bool>("--progress")
        {
            Description = "while a VM boots or stops, print the seconds waited on standard error, a line each (shown in place on a terminal anyway)",
            Recursive = true,
        };
        var root = new RootCommand("Create, stop, pause, resume and inspect microVMs through the firecracker-control daemon.")
        {
            socket, ns, json, config, progress,
        };

        Argument<string> Id() => new("ID") { Description = "VM id" };
        Option<uint> Timeout() => new("--timeout") { Description = "seconds" };
        // waiting: what a slow command is doing, for its progress line ("creating vm vm1"); null for quick ones.
        Command Run(Command command, Func<ParseResult, Call, Task<IMessage>> action, Func<ParseResult, IMessage, string> human,
            Func<ParseResult, string>? waiting = null)
        {
            command.SetAction(async (result, token) =>
            {
                FcctlConfig defaults;
                try
                {
                    defaults = FcctlConfig.Load(result.GetValue(config));
                }
                catch (InvalidDataException e)
                {
                    await stderr.WriteLineAsync($"fcctl: {e.Message}").ConfigureAwait(false);
                    return ExitCodes.Usage;
                }

                var call = new Call(result.GetValue(socket) ?? defaults.Socket, result.GetValue(ns) ?? defaults.Namespace, defaults, token);
                try
                {
                    Task<IMessage> pending = action(result, call);
                    if (waiting is not null)
                    {
                        ProgressMode mode = result.GetValue(progress) ? ProgressMode.Lines : stderrIsTerminal ? ProgressMode.Terminal : ProgressMode.Off;
                        await Progress.WaitAsync(pending, waiting(result), stderr, mode, token).ConfigureAwait(false);
                    }

                    IMessage answer = await pending.ConfigureAwait(false);
                    await stdout.WriteLineAsync(result.GetValue(json) ? Json.Format(answer) : human(result, answer)).ConfigureAwait(false);
                    return ExitCodes.Ok;
                }
                catch (TtrpcException e)
                {
                    await stderr.WriteLineAsync($"fcctl: {e.StatusCode}: {e.Message}").ConfigureAwait(false);
                    return e.StatusCode switch
                    {
                        StatusCode.NotFound => ExitCodes.NotFound,
                        StatusCode.AlreadyExists => ExitCodes.AlreadyExists,
                        StatusCode.InvalidArgument when e.Data.Contains(UsageMarker) => ExitCodes.Usage,
                        _ => ExitCodes.Failed,
                    };
                }
                catch (IOException e)
                {
                    await stderr.WriteLineAsync($"fcctl: {StatusCode.Unavailable}: {e.Message}").ConfigureAwait(false);
                    return ExitCodes.Failed;
                }
            });
            return command;
        }

        var createId = Id();
        var vcpus = new Option<uint?>("--vcpus") { Description = "vCPU count (0: the shim's default)" };
        var mem = new Option<uint?>("--mem-mib") { Description = "memory in MiB (0: the shim's default)" };
        var kernel = new Option<string?>("--kernel") { Description = "the guest kernel, an absolute path on the host (default: the runtime configuration's)" };
        var kernelArgs = new Option<string?>("--kernel-args") { Description = "the guest kernel's command line (default: the runtime configuration's)" };
        var containers = new Option<int>("--containers") { Description = "how many containers the VM will hold" };
        // As the API's own default (and upstream's): a VM made here lives until stop-vm unless asked otherwise.
        var exitAfterTasks = new Option<bool>("--exit-after-tasks")
        {
            Description = "end the VM (and its shim) once the last container in it is deleted; without it the VM lives until stop-vm",
        };
        var createTimeout = Timeout();
        var nets = new Option<string[]>("--net") { Description = $"a network interface on a host TAP device: {CreateVmDevices.NetForm} (repeatable)" };
        var cni = new Option<string?>("--cni") { Description = $"a network interface on a CNI network whose plugins end with tc-redirect-tap: {CreateVmDevices.CniForm} (IFNAME defaults to veth0)" };
        var cniConfDir = new Option<string?>("--cni-conf-dir") { Description = "where the CNI network's configuration is (default /etc/cni/conf.d)" };
        var cniBinDirs = new Option<string[]>("--cni-bin-dir") { Description = "a directory of CNI plugins (repeatable; default /opt/cni/bin and /usr/lib/cni)" };
        var drives = new Option<string[]>("--drive") { Description = $"a host file mounted in the guest: {CreateVmDevices.DriveForm} (repeatable)" };
        var balloonMib = new Option<long?>("--balloon-mib") { Description = "attach a memory balloon with this target in MiB" };
        var balloonStats = new Option<long>("--balloon-stats") { Description = "balloon statistics interval in seconds (0: off)" };
        var deflateOnOom = new Option<bool>("--balloon-deflate-on-oom") { Description = "let the guest deflate the balloon when it runs out of memory" };
        root.Add(Run(new Command("create-vm", "create a VM and start its shim")
            {
                createId, vcpus, mem, kernel, kernelArgs, containers, exitAfterTasks, createTimeout, nets, cni, cniConfDir, cniBinDirs, drives, balloonMib,
                balloonStats, deflateOnOom,
            },
            (r, c) =>
            {
                uint vcpuCount = r.GetValue(vcpus) ?? c.Defaults.Vcpus;
                uint memMib = r.GetValue(mem) ?? c.Defaults.MemMib;
                var request = new CreateVMRequest
                {
                    VMID = r.GetValue(createId),
                    MachineCfg = vcpuCount > 0 || memMib > 0
                        ? new FirecrackerMachineConfiguration { VcpuCount = vcpuCount, MemSizeMib = memMib }
                        : null,
                    KernelImagePath = r.GetValue(kernel) is { } path ? Path.GetFullPath(path) : c.Defaults.Kernel,
                    KernelArgs = r.GetValue(kernelArgs) ?? c.Defaults.KernelArgs,
                    ContainerCount = r.GetValue(containers),
                    ExitAfterAllTasksDeleted = r.GetValue(exitAfterTasks),
                    TimeoutSeconds = r.GetValue(createTimeout),
                    BalloonDevice = r.GetValue(balloonMib) is { } amount
                        ? new FirecrackerBalloonDevice { AmountMib = amount, StatsPollingIntervals = r.GetValue(balloonStats), DeflateOnOom = r.GetValue(deflateOnOom) }
                        : null,
                };
                request.NetworkInterfaces.Add(Parsed(r.GetValue(nets), CreateVmDevices.ParseNet));
                request.NetworkInterfaces.Add(Parsed(r.GetValue(cni) is { } network ? [network] : [],
                    text => CreateVmDevices.ParseCni(text, r.GetValue(cniConfDir), r.GetValue(cniBinDirs) ?? [])));
                request.DriveMounts.Add(Parsed(r.GetValue(drives), CreateVmDevices.ParseDrive));
                return c.CallAsync("CreateVM", request, CreateVMResponse.Parser);
            },
            (r, a) => Describe("created vm", (CreateVMResponse)a),
            r => $"creating vm {r.GetValue(createId)}"));

        var stopId = Id();
        var stopTimeout = Timeout();
        root.Add(Run(new Command("stop-vm", "stop a VM (its shim is killed after the timeout)") { stopId, stopTimeout },
            (r, c) => c.CallAsync("StopVM", new StopVMRequest { VMID = r.GetValue(stopId), TimeoutSeconds = r.GetValue(stopTimeout) }, Empty.Parser),
            (r, _) => $"stopped vm {r.GetValue(stopId)}",
            r => $"stopping vm {r.GetValue(stopId)}"));

        var pauseId = Id();
        root.Add(Run(new Command("pause", "pause a VM") { pauseId },
            (r, c) => c.CallAsync("PauseVM", new PauseVMRequest { VMID = r.GetValue(pauseId) }, Empty.Parser),
            (r, _) => $"paused vm {r.GetValue(pauseId)}"));

        var resumeId = Id();
        root.Add(Run(new Command("resume", "resume a paused VM") { resumeId },
            (r, c) => c.CallAsync("ResumeVM", new ResumeVMRequest { VMID = r.GetValue(resumeId) }, Empty.Parser),
            (r, _) => $"resumed vm {r.GetValue(resumeId)}"));

        var infoId = Id();
        root.Add(Run(new Command("info", "show a VM's sockets and paths") { infoId },
            (r, c) => c.CallAsync("GetVMInfo", new GetVMInfoRequest { VMID = r.GetValue(infoId) }, GetVMInfoResponse.Parser),
            (_, a) => Describe("vm", (GetVMInfoResponse)a)));

        var metadata = new Command("metadata", "read or write a VM's metadata (a JSON document)");
        var getId = Id();
        metadata.Add(Run(new Command("get", "print the VM's metadata") { getId },
            (r, c) => c.CallAsync("GetVMMetadata", new GetVMMetadataRequest { VMID = r.GetValue(getId) }, GetVMMetadataResponse.Parser),
            (_, a) => ((GetVMMetadataResponse)a).Metadata));
        foreach (var (verb, method, done) in new[] { ("set", "SetVMMetadata", "set"), ("update", "UpdateVMMetadata", "updated") })
        {
            var id = Id();
            var document = new Argument<string>("JSON") { Description = "the metadata document" };
            metadata.Add(Run(new Command(verb, $"{verb} the VM's metadata") { id, document },
                (r, c) =>
                {
                    string text = CheckedJson(r.GetValue(document) ?? "");
                    IMessage request = method == "SetVMMetadata"
                        ? new SetVMMetadataRequest { VMID = r.GetValue(id), Metadata = text }
                        : new UpdateVMMetadataRequest { VMID = r.GetValue(id), Metadata = text };
                    return c.CallAsync(method, request, Empty.Parser);
                },
                (r, _) => $"metadata {done} for vm {r.GetValue(id)}"));
        }

        root.Add(metadata);

        var balloon = new Command("balloon", "read or set a VM's memory balloon (the VM must have been created with one)");
        var balloonGetId = Id();
        balloon.Add(Run(new Command("get", "print the balloon's target and settings") { balloonGetId },
            (r, c) => c.CallAsync("GetBalloonConfig", new GetBalloonConfigRequest { VMID = r.GetValue(balloonGetId) }, GetBalloonConfigResponse.Parser),
            (r, a) => ((GetBalloonConfigResponse)a).BalloonConfig is { } b
                ? Lines($"balloon of vm {r.GetValue(balloonGetId)}", ("target", Mib(b.AmountMib)), ("deflate on oom", b.DeflateOnOom ? "yes" : "no"),
                    ("statistics every", b.StatsPollingIntervals > 0 ? string.Create(CultureInfo.InvariantCulture, $"{b.StatsPollingIntervals} s") : "off"))
                : $"vm {r.GetValue(balloonGetId)} reported no balloon"));
        var balloonSetId = Id();
        var target = new Argument<long>("MIB") { Description = "the balloon's new target in MiB (memory taken from the guest)" };
        balloon.Add(Run(new Command("set", "change the balloon's target") { balloonSetId, target },
            (r, c) => c.CallAsync("UpdateBalloon", new UpdateBalloonRequest { VMID = r.GetValue(balloonSetId), AmountMib = r.GetValue(target) }, Empty.Parser),
            (r, _) => $"balloon of vm {r.GetValue(balloonSetId)} set to {Mib(r.GetValue(target))}"));
        var balloonStatsId = Id();
        balloon.Add(Run(new Command("stats", "print the balloon's statistics") { balloonStatsId },
            (r, c) => c.CallAsync("GetBalloonStats", new GetBalloonStatsRequest { VMID = r.GetValue(balloonStatsId) }, GetBalloonStatsResponse.Parser),
            (r, a) =>
            {
                var s = (GetBalloonStatsResponse)a;
                return Lines($"balloon of vm {r.GetValue(balloonStatsId)}", ("target", Mib(s.TargetMib)), ("actual", Mib(s.ActualMib)),
                    ("guest total", Mib(s.TotalMemory >> 20)), ("guest free", Mib(s.FreeMemory >> 20)), ("guest available", Mib(s.AvailableMemory >> 20)));
            }));
        var balloonIntervalId = Id();
        var interval = new Argument<long>("SECONDS") { Description = "how often the guest reports statistics; the VM must have been created with them on" };
        balloon.Add(Run(new Command("stats-interval", "change how often the guest reports balloon statistics") { balloonIntervalId, interval },
            (r, c) => c.CallAsync("UpdateBalloonStats",
                new UpdateBalloonStatsRequest { VMID = r.GetValue(balloonIntervalId), StatsPollingIntervals = r.GetValue(interval) }, Empty.Parser),
            (r, _) => $"balloon statistics of vm {r.GetValue(balloonIntervalId)} every {r.GetValue(interval)} s"));
        root.Add(balloon);
        root.Add(Run(new Command("list", "list the VMs the daemon created in the namespace"),
            (_, c) => c.CallAsync(VmListService.ServiceName, "ListVMs", new ListVMsRequest(), ListVMsResponse.Parser),
            (_, a) => Table((ListVMsResponse)a)));

        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                await stderr.WriteLineAsync($"fcctl: {error.Message}").ConfigureAwait(false);
            }

            await stderr.WriteLineAsync("run fcctl --help for usage").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        return await parsed.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr }, cancellationToken).ConfigureAwait(false);
    }

    private const string UsageMarker = "fcctl-usage";

    // Each value of a repeatable device option parsed; a malformed one is a usage error (exit 2).
    private static List<T> Parsed<T>(string[]? values, Func<string, T> parse)
    {
        try
        {
            return [.. (values ?? []).Select(parse)];
        }
        catch (FormatException e)
        {
            var usage = new TtrpcException(StatusCode.InvalidArgument, e.Message, e);
            usage.Data[UsageMarker] = true;
            throw usage;
        }
    }

    private static string Mib(long mib) => string.Create(CultureInfo.InvariantCulture, $"{mib} MiB");

    private static string CheckedJson(string text)
    {
        try
        {
            ShimAnswerValidation.CheckJson(text, "JSON argument");
            return text;
        }
        catch (InvalidDataException e)
        {
            var usage = new TtrpcException(StatusCode.InvalidArgument, e.Message, e);
            usage.Data[UsageMarker] = true;
            throw usage;
        }
    }

    private static string Describe(string what, CreateVMResponse a) =>
        Lines($"{what} {a.VMID}", ("socket", a.SocketPath), ("log fifo", a.LogFifoPath), ("metrics fifo", a.MetricsFifoPath), ("cgroup", a.CgroupPath));

    private static string Describe(string what, GetVMInfoResponse a) =>
        Lines($"{what} {a.VMID}", ("state", a.State.ToLowerInvariant()), ("socket", a.SocketPath), ("vsock", a.VSockPath), ("log fifo", a.LogFifoPath),
            ("metrics fifo", a.MetricsFifoPath), ("cgroup", a.CgroupPath));

    private static string Lines(string title, params (string Name, string Value)[] fields) =>
        string.Join('\n', fields.Where(f => f.Value.Length > 0).Select(f => $"  {f.Name}: {f.Value}").Prepend(title));

    private static string Table(ListVMsResponse list)
    {
        if (list.VMs.Count == 0)
        {
            return "no vms";
        }

        int width = Math.Max(4, list.VMs.Max(v => v.VMID.Length));
        return string.Join('\n', list.VMs.Select(v => string.Create(CultureInfo.InvariantCulture, $"{v.VMID.PadRight(width)}  {v.ShimPid,8}  {v.ShimSocketPath}"))
            .Prepend($"{"VMID".PadRight(width)}  {"SHIM PID",8}  SOCKET"));
    }

    /// <summary>One call's target: the daemon's socket, the namespace, the defaults file it was made under, and the command's cancellation.</summary>
    private sealed record Call(string Socket, string Namespace, FcctlConfig Defaults, CancellationToken Token)
    {
        public async Task<IMessage> CallAsync<TResponse>(string method, IMessage request, MessageParser<TResponse> parser)
            where TResponse : IMessage<TResponse> =>
            await CallAsync(ServiceNames.Firecracker, method, request, parser).ConfigureAwait(false);

        public async Task<IMessage> CallAsync<TResponse>(string service, string method, IMessage request, MessageParser<TResponse> parser)
            where TResponse : IMessage<TResponse>
        {
            var client = await TtrpcClient.ConnectUnixAsync(Socket, Token).ConfigureAwait(false);
            await using (client.ConfigureAwait(false))
            {
                return await client.CallAsync(service, method, request, parser,
                    new TtrpcCallOptions { Metadata = CallNamespace.For(Namespace) }, Token).ConfigureAwait(false);
            }
        }
    }
}
