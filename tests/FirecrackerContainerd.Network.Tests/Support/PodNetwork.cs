namespace FirecrackerContainerd.Network.Tests.Support;

/// <summary>
/// A host stand-in and a pod, each a namespace of its own, joined by a veth pair: <see cref="HostEnd"/> in the host
/// namespace, <see cref="PodEnd"/> (<c>eth0</c>) in the pod's, both up. Nothing touches the real host's network.
/// </summary>
internal sealed class PodNetwork : IAsyncDisposable
{
    public const string PodEnd = "eth0";

    private PodNetwork(TestNamespace host, TestNamespace pod, string hostEnd)
    {
        Host = host;
        Pod = pod;
        HostEnd = hostEnd;
    }

    public TestNamespace Host { get; }

    public TestNamespace Pod { get; }

    public string HostEnd { get; }

    public static async Task<PodNetwork> CreateAsync(int mtu = 1400)
    {
        TestNamespace host = await TestNamespace.CreateAsync("host");
        TestNamespace? pod = null;
        try
        {
            pod = await TestNamespace.CreateAsync("pod");
            string hostEnd = "veth" + Guid.NewGuid().ToString("N")[..6];
            await host.IpAsync("link", "add", hostEnd, "mtu", $"{mtu}", "type", "veth", "peer", "name", PodEnd, "mtu", $"{mtu}", "netns", pod.Name);
            await host.IpAsync("link", "set", hostEnd, "up");
            await pod.IpAsync("link", "set", PodEnd, "up");
            return new PodNetwork(host, pod, hostEnd);
        }
        catch
        {
            if (pod is not null)
            {
                await pod.DisposeAsync();
            }

            await host.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Pod.DisposeAsync();
        await Host.DisposeAsync();
    }
}
