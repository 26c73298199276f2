using FirecrackerContainerd.Network.Namespaces;
using FirecrackerContainerd.Network.Tests.Support;

namespace FirecrackerContainerd.Network.Tests.Namespaces;

[Trait("Category", "Network")]
public class NetworkNamespaceTests
{
    [Fact]
    public async Task RunAsync_runs_the_work_inside_the_namespace_and_leaves_the_caller_where_it_was()
    {
        await using TestNamespace ns = await TestNamespace.CreateAsync("ns");
        string outside = NamespaceOfThisThread();

        (string inside, bool seesItsLoopbackOnly) = await NetworkNamespace.RunAsync(ns.Path, () =>
        {
            using Rtnetlink rtnetlink = Rtnetlink.Open();
            return (NamespaceOfThisThread(), rtnetlink.ListLinks().Select(l => l.Name).SequenceEqual(["lo"]));
        });

        Assert.NotEqual(outside, inside);
        Assert.True(seesItsLoopbackOnly);
        Assert.Equal(outside, NamespaceOfThisThread());
        Assert.Equal(inside, await NetworkNamespace.RunAsync(ns.Path, NamespaceOfThisThread));
    }

    [Fact]
    public async Task RunAsync_reports_a_namespace_that_does_not_exist()
    {
        var e = await Assert.ThrowsAsync<NetworkNamespaceNotFoundException>(() => NetworkNamespace.RunAsync("/var/run/netns/fcn-missing-0", () => 1));
        Assert.Equal("network namespace /var/run/netns/fcn-missing-0 does not exist", e.Message);
    }

    [Fact]
    public async Task RunAsync_refuses_a_path_that_is_not_a_network_namespace()
    {
        string file = Path.GetTempFileName();
        try
        {
            var e = await Assert.ThrowsAsync<IOException>(() => NetworkNamespace.RunAsync(file, () => 1));
            Assert.Equal($"setns into network namespace {file}: not a network namespace", e.Message);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task RunAsync_hands_the_work_exception_to_the_caller()
    {
        await using TestNamespace ns = await TestNamespace.CreateAsync("ns");
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => NetworkNamespace.RunAsync<int>(ns.Path, () => throw new InvalidOperationException("inside")));
        Assert.Equal("inside", e.Message);
    }

    [Fact]
    public async Task CreateAsync_pins_a_new_empty_namespace_that_Remove_takes_away()
    {
        string path = $"/var/run/netns/fcn-made-{Guid.NewGuid().ToString("N")[..6]}";
        try
        {
            Assert.True(await NetworkNamespace.CreateAsync(path));
            (string inside, string[] links) = await NetworkNamespace.RunAsync(path, () =>
            {
                using Rtnetlink rtnetlink = Rtnetlink.Open();
                return (NamespaceOfThisThread(), rtnetlink.ListLinks().Select(l => l.Name).ToArray());
            });

            Assert.NotEqual(NamespaceOfThisThread(), inside);
            Assert.Equal(["lo"], links);
            Assert.False(await NetworkNamespace.CreateAsync(path));
            Assert.Equal(inside, await NetworkNamespace.RunAsync(path, NamespaceOfThisThread));

            NetworkNamespace.Remove(path);

            Assert.False(File.Exists(path));
            await Assert.ThrowsAsync<NetworkNamespaceNotFoundException>(() => NetworkNamespace.RunAsync(path, () => 1));
            NetworkNamespace.Remove(path);
        }
        finally
        {
            if (File.Exists(path))
            {
                NetworkNamespace.Remove(path);
            }
        }
    }

    [Fact]
    public async Task CreateAsync_refuses_a_path_that_holds_something_else()
    {
        string file = Path.GetTempFileName();
        try
        {
            await Assert.ThrowsAsync<IOException>(() => NetworkNamespace.CreateAsync(file));
            Assert.True(File.Exists(file));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static string NamespaceOfThisThread() => new FileInfo("/proc/thread-self/ns/net").LinkTarget!;
}
