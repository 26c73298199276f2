using System.Net.Sockets;
using FirecrackerContainerd.Agent;
using FirecrackerContainerd.Ttrpc.Server;
using FirecrackerContainerd.Ttrpc.Transport;

// The in-guest agent. In the VM it listens on AF_VSOCK port 10789; --unix PATH serves on a Unix socket
// instead (for running it on a host).
uint port = 10789;
string? unixPath = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--vsock-port" when i + 1 < args.Length && uint.TryParse(args[i + 1], out uint p):
            port = p;
            i++;
            break;
        case "--unix" when i + 1 < args.Length:
            unixPath = args[++i];
            break;
        default:
            await Console.Error.WriteLineAsync($"fc-agent: unknown argument \"{args[i]}\"; usage: fc-agent [--vsock-port N | --unix PATH]");
            return 2;
    }
}

string[] searchPath = (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin:/usr/sbin:/sbin").Split(':');
string[] runtimes = ["crun", "runc"];
runtimes = runtimes
    .Where(r => searchPath.Any(d => File.Exists(Path.Combine(d, r))))
    .ToArray();
var registry = new TtrpcServiceRegistry();
new AgentService("/proc", runtimes).Register(registry);
await using var server = new TtrpcServer(registry);
using var stop = new CancellationTokenSource();
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
    {
        context.Cancel = true;
        stop.Cancel();
    });

if (unixPath is not null)
{
    using Socket listener = UnixSocketTransport.Listen(unixPath);
    await Console.Error.WriteLineAsync($"fc-agent: serving on unix {unixPath}");
    try
    {
        await server.ServeAsync(listener, stop.Token);
    }
    catch (OperationCanceledException)
    {
    }

    return 0;
}

using VsockListener vsock = VsockListener.Listen(port);
await Console.Error.WriteLineAsync($"fc-agent: serving on vsock port {port}");
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
