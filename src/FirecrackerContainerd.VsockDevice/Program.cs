using System.Globalization;
using FirecrackerContainerd.Vsock;
using FirecrackerContainerd.VsockDevice;

// fc-vhost-vsock: serves one VM's vhost-user vsock device until QEMU disconnects or SIGTERM/SIGINT.
const string usage = "usage: fc-vhost-vsock --socket <vhost-user socket> --uds-path <hybrid vsock socket> --guest-cid <cid> [--verbose]";

string? socketPath = null;
string? udsPath = null;
ulong? guestCid = null;
bool verbose = false;
for (int i = 0; i < args.Length; i++)
{
    string? Next() => i + 1 < args.Length ? args[++i] : null;
    switch (args[i])
    {
        case "--socket":
            socketPath = Next();
            break;
        case "--uds-path":
            udsPath = Next();
            break;
        case "--guest-cid":
            guestCid = ulong.TryParse(Next(), NumberStyles.None, CultureInfo.InvariantCulture, out ulong cid) ? cid : null;
            break;
        case "--verbose":
            verbose = true;
            break;
        default:
            await Console.Error.WriteLineAsync($"fc-vhost-vsock: unknown argument '{args[i]}'\n{usage}").ConfigureAwait(false);
            return 2;
    }
}
if (socketPath is null || udsPath is null || guestCid is null)
{
    await Console.Error.WriteLineAsync(usage).ConfigureAwait(false);
    return 2;
}

using var stop = new CancellationTokenSource();
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stop.Cancel();
});
using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, context =>
{
    context.Cancel = true;
    stop.Cancel();
});
try
{
    var device = new VhostUserVsockDevice(new VhostUserVsockOptions(socketPath, udsPath, guestCid.Value),
        new StandardErrorLogger(verbose ? Microsoft.Extensions.Logging.LogLevel.Debug : Microsoft.Extensions.Logging.LogLevel.Information));
    await device.RunAsync(stop.Token).ConfigureAwait(false);
    return 0;
}
catch (Exception e) when (e is IOException or ArgumentException or FirecrackerContainerd.Vsock.VhostUser.VhostUserProtocolException)
{
    await Console.Error.WriteLineAsync($"fc-vhost-vsock: {e.Message}").ConfigureAwait(false);
    return 1;
}
