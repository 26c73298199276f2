using System.Net.Sockets;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vsock.Unix;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>Reaches a booting guest's agent through the VM's hybrid vsock, failing the test with the guest console when it never answers.</summary>
internal static class GuestAgent
{
    public static async Task<Socket> DialAsync(string vsockPath, ConsoleLog console, TimeSpan bootLimit, CancellationToken cancellationToken)
    {
        var dial = new HybridVsockDialOptions(bootLimit, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5));
        try
        {
            return await HybridVsockDialer.DialAsync(vsockPath, WellKnownNames.AgentVsockPort, dial, cancellationToken);
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message}\nguest console:\n{console}");
            throw;
        }
    }
}
