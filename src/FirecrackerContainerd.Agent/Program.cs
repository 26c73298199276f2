using System.Net.Sockets;
using System.Runtime.InteropServices;
using FirecrackerContainerd.Agent;
using FirecrackerContainerd.Agent.Drives;
using FirecrackerContainerd.Agent.Events;
using FirecrackerContainerd.Agent.Metadata;
using FirecrackerContainerd.Agent.Oci;
using FirecrackerContainerd.Agent.Pods;
using FirecrackerContainerd.Agent.Processes;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Agent.Tasks;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Shim.Tasks;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Ttrpc.Transport;

// The in-guest agent. In the VM it serves ttrpc on AF_VSOCK port 10789 and takes stdio connections on
// vsock ports; --unix PATH serves on a Unix socket instead and --stdio-dir DIR takes stdio on Unix sockets
// (for running it outside a VM).
AgentOptions options;
try
{
    options = AgentOptions.Parse(args);
}
catch (ArgumentException e)
{
    await Console.Error.WriteLineAsync($"fc-agent: {e.Message}\nusage: fc-agent [--vsock-port N | --unix PATH] [--stdio-dir DIR] [--runtime crun|runc|PATH] [--bundle-root DIR] [--state-root DIR] [--metadata-dir DIR] [--trace]");
    return 2;
}

string[] runtimes = new[] { options.Runtime, "crun", "runc" }.Distinct().Where(r => ExecutableLookup.Find(r) is not null).ToArray();
if (runtimes.Length == 0 || ExecutableLookup.Find(options.Runtime) is not { } runtimeBinary)
{
    await Console.Error.WriteLineAsync($"fc-agent: OCI runtime \"{options.Runtime}\" not found on PATH");
    return 1;
}

// As PID 1 the .NET runtime reaps every child on SIGCHLD (waitpid(-1)), racing the agent's reaper for
// container exit statuses; the guest's /init keeps PID 1 and runs the agent as its child.
if (Environment.ProcessId == 1)
{
    await Console.Error.WriteLineAsync("fc-agent: refusing to run as PID 1: the .NET runtime would reap container processes before the agent sees their exit; start it from an init");
    return 1;
}

AgentTrace.Enabled = options.Trace;
Interop_BecomeSubreaper();
using var reaper = new ChildReaper();
var events = new EventQueue();
IStdioTransport stdio = options.StdioDirectory is { } dir ? new UnixStdioTransport(dir) : new VsockStdioTransport();
var registry = new TtrpcServiceRegistry { Trace = options.Trace ? AgentTrace.Write : null };
new AgentService("/proc", runtimes, Environment.GetEnvironmentVariable(AgentService.InitUptimeVariable)).Register(registry);
var metadata = new MetadataStore(options.MetadataDirectory);
metadata.Register(registry);
events.Register(registry);
new PodStore(WellKnownNames.GuestPodRoot).Register(registry);
DriveMounter drives = DriveMounter.Scan();
drives.Register(registry);
using var tasks = new TaskService(
    new OciRuntime(runtimeBinary, options.StateRoot, reaper), reaper, stdio, events, new GuestBundles(options.BundleRoot, drives), metadata.Directory);
registry.AddTaskService(tasks);

await using var server = new TtrpcServer(registry);
using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.Cancel();
});

if (options.UnixPath is { } unixPath)
{
    using Socket listener = UnixSocketTransport.Listen(unixPath);
    await Console.Error.WriteLineAsync($"fc-agent: serving on unix {unixPath} with {runtimeBinary}");
    try
    {
        await server.ServeAsync(listener, stop.Token);
    }
    catch (OperationCanceledException)
    {
    }

    return 0;
}

using VsockListener vsock = VsockListener.Listen(options.VsockPort);
await Console.Error.WriteLineAsync($"fc-agent: serving on vsock port {options.VsockPort} with {runtimeBinary}");
using var acceptStopped = stop.Token.Register(vsock.Dispose);
var acceptThread = new Thread(() =>
{
    while (vsock.Accept() is { } connection)
    {
        _ = server.ServeConnectionAsync(connection);
    }
})
{ IsBackground = true, Name = "vsock-accept" };
acceptThread.Start();
try
{
    await Task.Delay(Timeout.Infinite, stop.Token);
}
catch (OperationCanceledException)
{
}

return 0;

static void Interop_BecomeSubreaper() => FirecrackerContainerd.Agent.Native.Interop.BecomeSubreaper();
