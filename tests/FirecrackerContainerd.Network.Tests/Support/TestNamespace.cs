namespace FirecrackerContainerd.Network.Tests.Support;

/// <summary>A network namespace made for one test with <c>ip netns add</c> and deleted with everything in it.</summary>
internal sealed class TestNamespace : IAsyncDisposable
{
    private TestNamespace(string name)
    {
        Name = name;
    }

    /// <summary>The namespace's name under /var/run/netns.</summary>
    public string Name { get; }

    /// <summary>The path that names it.</summary>
    public string Path => "/var/run/netns/" + Name;

    /// <summary>Makes a namespace named <c>fcn-PREFIX-RANDOM</c> with its loopback up.</summary>
    public static async Task<TestNamespace> CreateAsync(string prefix)
    {
        string name = $"fcn-{prefix}-{Guid.NewGuid().ToString("N")[..6]}";
        await Ip("netns", "add", name);
        var created = new TestNamespace(name);
        await created.IpAsync("link", "set", "lo", "up");
        return created;
    }

    /// <summary>Runs <c>ip -n NAME ARGS</c> and returns its stdout.</summary>
    public async Task<string> IpAsync(params string[] args) => await Ip(["-n", Name, .. args]);

    /// <summary>Runs <c>ip ARGS</c> in the test's own namespace, failing the test on a non-zero exit.</summary>
    public static async Task<string> Ip(params string[] args)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return (await Tool.RunAsync("ip", args, "iproute2", timeout.Token)).Stdout;
    }

    public async ValueTask DisposeAsync()
    {
        if (File.Exists(Path))
        {
            await Ip("netns", "delete", Name);
        }
    }
}
