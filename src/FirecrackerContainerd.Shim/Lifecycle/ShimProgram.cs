using System.Diagnostics;
using System.Runtime.InteropServices;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Addressing;
using FirecrackerContainerd.Shim.Arguments;
using FirecrackerContainerd.Shim.Events;
using FirecrackerContainerd.Shim.Logging;
using FirecrackerContainerd.Shim.Tasks;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>
/// The shim's <c>Main</c>: dispatches containerd's <c>start</c> and <c>delete</c> verbs and runs the daemon.
/// <c>start</c> prints only the address; <c>delete</c> prints only a DeleteResponse; the daemon never touches
/// the standard streams containerd reads.
/// </summary>
public static partial class ShimProgram
{
    private static readonly TimeSpan DaemonStartTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Runs the invocation described by <paramref name="args"/> and returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args, IShimRuntime runtime, string version)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ShimArguments parsed;
        try
        {
            parsed = ShimArguments.Parse(args);
        }
        catch (ShimUsageException e)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return 2;
        }

        try
        {
            switch (parsed.Verb)
            {
                case ShimVerb.Version:
                    await Console.Out.WriteLineAsync($"{WellKnownNames.ShimBinaryName}:\n  Version: {version}").ConfigureAwait(false);
                    return 0;
                case ShimVerb.Start:
                    string address = await StartAsync(parsed, runtime, CancellationToken.None).ConfigureAwait(false);
                    await WriteStdoutAsync(System.Text.Encoding.UTF8.GetBytes(address)).ConfigureAwait(false);
                    return 0;
                case ShimVerb.Delete:
                    var response = await DeleteAsync(parsed, runtime, CancellationToken.None).ConfigureAwait(false);
                    await WriteStdoutAsync(response.ToByteArray()).ConfigureAwait(false);
                    return 0;
                default:
                    return await ServeAsync(parsed, runtime).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // The top of the process: every failure becomes a message and an exit code.
        catch (Exception e)
#pragma warning restore CA1031
        {
            InvocationLog.Append($"verb={parsed.Verb} ns={parsed.Namespace} id={parsed.Id} failed: {e.Message}");
            if (parsed.Verb != ShimVerb.Serve)
            {
                await Console.Error.WriteLineAsync($"{parsed.Verb.ToString().ToLowerInvariant()} failed: {e.Message}").ConfigureAwait(false);
            }

            return 1;
        }
    }

    /// <summary>
    /// <c>start</c>: reuses a live shim on the socket, else spawns the daemon (which binds the socket itself, since
    /// .NET cannot hand it a listening descriptor) and waits until it accepts; writes the address file; returns the address.
    /// </summary>
    public static async Task<string> StartAsync(ShimArguments args, IShimRuntime runtime, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(runtime);
        ValidateIdentity(args);
        string bundle = BundlePath(args);
        string key = runtime.SocketKey(args, bundle);
        string address = ShimSocketAddress.For(args.Address, args.Namespace, key);
        string path = ShimSocketAddress.ToPath(address);

        if (!await ShimSocket.AnswersAsync(path, cancellationToken).ConfigureAwait(false))
        {
            ShimSocket.Remove(path);
            await SpawnDaemonAsync(args, address, path, bundle, cancellationToken).ConfigureAwait(false);
        }

        ShimAddress.Write(Path.Combine(bundle, WellKnownNames.ShimAddrFileName), address);
        InvocationLog.Append($"verb=start ns={args.Namespace} id={args.Id} bundle={bundle} address={address}");
        return address;
    }

    /// <summary>
    /// <c>delete</c>: lets the runtime clean up, removes a stale socket and the address file, and returns the response
    /// to print. Safe to run any number of times.
    /// </summary>
    public static async Task<DeleteResponse> DeleteAsync(ShimArguments args, IShimRuntime runtime, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(runtime);
        ValidateIdentity(args);
        string bundle = BundlePath(args);
        var response = await runtime.CleanupAsync(args, bundle, cancellationToken).ConfigureAwait(false);

        string path = ShimSocketAddress.ToPath(ShimSocketAddress.For(args.Address, args.Namespace, runtime.SocketKey(args, bundle)));
        if (!await ShimSocket.AnswersAsync(path, cancellationToken).ConfigureAwait(false))
        {
            ShimSocket.Remove(path);
        }

        File.Delete(Path.Combine(bundle, WellKnownNames.ShimAddrFileName));
        InvocationLog.Append($"verb=delete ns={args.Namespace} id={args.Id} bundle={bundle} exit_status={response.ExitStatus}");
        return response;
    }

    /// <summary>The response runc's shim gives for a task it cleaned up: killed (128+9) just now.</summary>
    public static DeleteResponse KilledNow() =>
        new() { ExitStatus = 137, ExitedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow) };

    private static async Task<int> ServeAsync(ShimArguments args, IShimRuntime runtime)
    {
        Interop.StartNewSession();
        Interop.DetachStandardStreams();
        ValidateIdentity(args);
        if (args.Socket.Length == 0)
        {
            throw new ShimUsageException("the daemon needs -socket (it is started by the start verb)");
        }

        string bundle = BundlePath(args);
        string path = ShimSocketAddress.ToPath(args.Socket);
        await using var logging = await OpenLogAsync(args, bundle).ConfigureAwait(false);
        var logger = logging?.CreateLogger("shim") ?? NullLogger.Instance;
        AppDomain.CurrentDomain.UnhandledException += (_, e) => LogCrash(logger, e.ExceptionObject as Exception);

        var lifetime = new ShimLifetime();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            lifetime.RequestExit("SIGTERM");
        });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c =>
        {
            c.Cancel = true;
            lifetime.RequestExit("SIGINT");
        });

        using var listener = await ShimSocket.BindAsync(path, CancellationToken.None).ConfigureAwait(false);
        await using var events = new EventPublisher(EventPublisher.ResolveSocketPath(args.Address), args.Namespace, logger);
        var context = new ShimDaemonContext(args, bundle, args.Socket, events, lifetime, logger);
        ShimServices services = runtime.CreateServices(context);
        var registry = new TtrpcServiceRegistry().AddTaskService(services.Tasks);
        services.AddOthers?.Invoke(registry);
        var server = new TtrpcServer(registry, new TtrpcServerOptions { RequireSameUser = true }, logger);
        try
        {
            _ = server.ServeAsync(listener);
            InvocationLog.Append($"verb=serve ns={args.Namespace} id={args.Id} socket={path}");
            long sinceExec = MillisecondsSinceExec();
            LogServing(logger, path, args.Namespace, args.Id, sinceExec);
            string reason = await lifetime.ExitRequested.ConfigureAwait(false);
            LogExiting(logger, reason);
            using var drain = new CancellationTokenSource(DrainTimeout);
            await server.ShutdownAsync(drain.Token).ConfigureAwait(false);
        }
        finally
        {
            await server.DisposeAsync().ConfigureAwait(false);
            ShimSocket.Remove(path);
            InvocationLog.Append($"verb=serve ns={args.Namespace} id={args.Id} exited");
        }

        return 0;
    }

    private static async Task SpawnDaemonAsync(ShimArguments args, string address, string path, string bundle, CancellationToken cancellationToken)
    {
        string executable = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find this shim's executable path");
        var info = new ProcessStartInfo(executable)
        {
            UseShellExecute = false,
            WorkingDirectory = bundle,
            // Fresh pipes replace containerd's: the daemon must not hold containerd's stdout/stderr open.
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (Path.GetFileNameWithoutExtension(executable) == "dotnet")
        {
            // Run as `dotnet shim.dll` (never the case for a native build): the first argument names the assembly.
            info.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        }

        foreach (string arg in args.DaemonArguments(address))
        {
            info.ArgumentList.Add(arg);
        }

        using var daemon = Process.Start(info) ?? throw new InvalidOperationException($"failed to start shim daemon {executable}");
        daemon.StandardInput.Close();
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (await ShimSocket.AnswersAsync(path, cancellationToken).ConfigureAwait(false))
            {
                return;
            }

            if (daemon.HasExited)
            {
                // Another start for the same socket may have won the race; its daemon is as good as ours.
                if (await ShimSocket.AnswersAsync(path, cancellationToken).ConfigureAwait(false))
                {
                    return;
                }

                throw new IOException($"shim daemon for {args.Namespace}/{args.Id} exited with code {daemon.ExitCode} before serving on {path}");
            }

            if (deadline.Elapsed > DaemonStartTimeout)
            {
                daemon.Kill();
                throw new TimeoutException($"shim daemon for {args.Namespace}/{args.Id} did not serve on {path} within {DaemonStartTimeout.TotalSeconds} s");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<FifoLoggerProvider?> OpenLogAsync(ShimArguments args, string bundle)
    {
        string logPath = Path.Combine(bundle, WellKnownNames.ShimLogFifoName);
        if (!Fifo.IsFifo(logPath))
        {
            return null;
        }

        var stream = await Fifo.OpenAsync(logPath, FifoMode.Write | FifoMode.NonBlocking, UnixFileMode.None, CancellationToken.None)
            .ConfigureAwait(false);
        return new FifoLoggerProvider(stream, args.Debug ? LogLevel.Debug : LogLevel.Information,
            $"runtime={WellKnownNames.RuntimeName} namespace={args.Namespace} id={args.Id} pid={Environment.ProcessId}");
    }

    private static void ValidateIdentity(ShimArguments args)
    {
        if (args.Address.Length == 0)
        {
            throw new ShimUsageException("-address (containerd's socket) is required");
        }

        Identifiers.Validate(args.Namespace);
        Identifiers.Validate(args.Id);
    }

    private static string BundlePath(ShimArguments args) =>
        Path.GetFullPath(args.Bundle.Length > 0 ? args.Bundle : Directory.GetCurrentDirectory());

    private static async Task WriteStdoutAsync(byte[] bytes)
    {
        await using var stdout = Console.OpenStandardOutput();
        await stdout.WriteAsync(bytes).ConfigureAwait(false);
        await stdout.FlushAsync().ConfigureAwait(false);
    }

    private static void LogCrash(ILogger logger, Exception? exception) => LogUnhandled(logger, exception);

    // How long this process took from its exec to serving: the shim's own share of a new VM's start.
    private static long MillisecondsSinceExec()
    {
        using var self = Process.GetCurrentProcess();
        return (long)(DateTime.Now - self.StartTime).TotalMilliseconds;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "shim serving on {Socket} for {Namespace}/{Id}, {Milliseconds} ms after its exec")]
    private static partial void LogServing(ILogger logger, string socket, string @namespace, string id, long milliseconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "shim exiting: {Reason}")]
    private static partial void LogExiting(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Critical, Message = "shim crashed")]
    private static partial void LogUnhandled(ILogger logger, Exception? exception);
}
