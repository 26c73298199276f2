using FirecrackerContainerd.Control.Shims;

namespace FirecrackerContainerd.Control.Tests;

/// <summary>The real launcher against a script standing in for the shim executable (it binds nothing).</summary>
public sealed class ShimBinaryLauncherTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fclaunch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Start_runs_the_shim_start_verb_in_the_bundle_with_containerds_arguments()
    {
        var endpoint = ShimEndpoint.For("/run/c.sock", "ns1", "vm1");
        string script = Script($"echo \"$PWD $*\" > {_dir}/args; printf '%s' '{endpoint.Address}'");
        var bundle = VmBundle.For(_dir, "ns1", "vm1");
        bundle.Create("vm1");

        await new ShimBinaryLauncher(script, "/run/c.sock", "/usr/bin/containerd").StartAsync(endpoint, bundle, CancellationToken.None);

        Assert.Equal($"{bundle.RootPath} -namespace ns1 -address /run/c.sock -publish-binary /usr/bin/containerd -id vm1 -bundle {bundle.RootPath} start\n",
            await File.ReadAllTextAsync(Path.Combine(_dir, "args")));
    }

    [Fact]
    public async Task Start_gives_the_shim_the_daemons_runtime_configuration()
    {
        var endpoint = ShimEndpoint.For("/run/c.sock", "ns1", "vm1");
        string script = Script($"echo \"${ShimBinaryLauncher.RuntimeConfigVariable}\" > {_dir}/config; printf '%s' '{endpoint.Address}'");
        var bundle = VmBundle.For(_dir, "ns1", "vm1");
        bundle.Create("vm1");

        await new ShimBinaryLauncher(script, "/run/c.sock", "/usr/bin/containerd", "/etc/fc/runtime.json").StartAsync(endpoint, bundle, CancellationToken.None);

        Assert.Equal("/etc/fc/runtime.json\n", await File.ReadAllTextAsync(Path.Combine(_dir, "config")));
    }

    [Theory]
    [InlineData("printf 'unix:///run/containerd/s/other'")]
    [InlineData("echo broken >&2; exit 1")]
    public async Task Start_fails_naming_the_vm_when_the_shim_fails_or_prints_another_address(string body)
    {
        var endpoint = ShimEndpoint.For("/run/c.sock", "ns1", "vm1");
        var bundle = VmBundle.For(_dir, "ns1", "vm1");
        bundle.Create("vm1");
        var e = await Assert.ThrowsAsync<IOException>(() =>
            new ShimBinaryLauncher(Script(body), "/run/c.sock", "/usr/bin/containerd").StartAsync(endpoint, bundle, CancellationToken.None));
        Assert.Contains("vm vm1 in namespace ns1", e.Message, StringComparison.Ordinal);
    }

    private string Script(string body)
    {
        string path = Path.Combine(_dir, "fake-shim");
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }
}
