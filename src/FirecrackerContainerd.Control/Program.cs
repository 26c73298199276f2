using System.Runtime.InteropServices;
using FirecrackerContainerd.Control;
using FirecrackerContainerd.Control.Configuration;
using FirecrackerContainerd.Control.Shims;
using Microsoft.Extensions.Logging;

ControlOptions options;
try
{
    options = ControlOptions.FromArguments(args);
}
catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException)
{
    await Console.Error.WriteLineAsync($"firecracker-control: {e.Message}").ConfigureAwait(false);
    await Console.Error.WriteLineAsync("usage: firecracker-control [--config FILE] [--socket PATH] [--grpc-socket PATH (empty: none)] [--containerd-address PATH] [--shim-binary PATH] [--publish-binary PATH] [--state-dir DIR] [--runtime-config FILE]").ConfigureAwait(false);
    return 2;
}

using var loggers = LoggerFactory.Create(b => b.AddProvider(new StderrLoggerProvider()));
var logger = loggers.CreateLogger("firecracker-control");
var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
try
{
    var launcher = new ShimBinaryLauncher(options.ShimBinary, options.ContainerdAddress, options.PublishBinary, options.RuntimeConfig);
    await using var daemon = await ControlDaemon.StartAsync(options, launcher, logger, CancellationToken.None).ConfigureAwait(false);
    await Console.Error.WriteLineAsync($"firecracker-control: serving ttrpc on {options.SocketPath}" +
        (options.GrpcSocketPath.Length > 0 ? $", gRPC on {options.GrpcSocketPath}" : string.Empty)).ConfigureAwait(false);
    await stop.Task.ConfigureAwait(false);
    return 0;
}
catch (IOException e)
{
    await Console.Error.WriteLineAsync($"firecracker-control: {e.Message}").ConfigureAwait(false);
    return 1;
}
