using System.Net;
using System.Security.Cryptography;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// A CNI network of one test for VMs made with <c>fcctl create-vm --cni</c>: Debian's bridge with host-local on a
/// bridge and a /24 of its own (chosen at random in 10.78.0.0/16, so parallel runs do not collide), then our published
/// tc-redirect-tap (or not, to see the refusal); a plugin directory of links to /usr/lib/cni and the plugin.
/// Disposing removes the bridge the plugin made and the directory.
/// </summary>
internal sealed class CniTestNetwork : IAsyncDisposable
{
    private CniTestNetwork(string directory, string name, string bridge, IPAddress gateway)
    {
        Directory = directory;
        Name = name;
        Bridge = bridge;
        Gateway = gateway;
    }

    /// <summary>The network's name, as create-vm's --cni gives it.</summary>
    public string Name { get; }

    /// <summary>The directory holding its configuration (--cni-conf-dir).</summary>
    public string ConfDir => Path.Combine(Directory, "conf");

    /// <summary>The directory of plugins (--cni-bin-dir).</summary>
    public string BinDir => Path.Combine(Directory, "bin");

    /// <summary>The Linux bridge the VMs' veths join, made by the bridge plugin at the first ADD.</summary>
    public string Bridge { get; }

    /// <summary>The bridge's address on the host, the VMs' gateway.</summary>
    public IPAddress Gateway { get; }

    private string Directory { get; }

    private string IpamDirectory => Path.Combine(Directory, "ipam", Name);

    /// <summary>Makes the network's files; <paramref name="withTap"/> false leaves tc-redirect-tap out of the chain.</summary>
    public static async Task<CniTestNetwork> CreateAsync(bool withTap)
    {
        foreach (string plugin in new[] { "bridge", "host-local" })
        {
            Assert.True(File.Exists(Path.Combine("/usr/lib/cni", plugin)), $"/usr/lib/cni/{plugin} is missing: apt-get install containernetworking-plugins");
        }

        string tapDirectory = await TcRedirectTapBinary.RequireDirectoryAsync();
        string hex = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        int third = RandomNumberGenerator.GetInt32(256);
        var network = new CniTestNetwork(
            System.IO.Directory.CreateTempSubdirectory("fccni-").FullName, "fcvm" + hex, "fcvb" + hex, IPAddress.Parse($"10.78.{third}.1"));
        System.IO.Directory.CreateDirectory(network.BinDir);
        System.IO.Directory.CreateDirectory(network.ConfDir);
        foreach (string plugin in System.IO.Directory.GetFiles("/usr/lib/cni"))
        {
            File.CreateSymbolicLink(Path.Combine(network.BinDir, Path.GetFileName(plugin)), plugin);
        }

        File.CreateSymbolicLink(Path.Combine(network.BinDir, "tc-redirect-tap"), Path.Combine(tapDirectory, "tc-redirect-tap"));
        string tap = withTap ? """, { "type": "tc-redirect-tap" }""" : string.Empty;
        await File.WriteAllTextAsync(Path.Combine(network.ConfDir, $"10-{network.Name}.conflist"), $$"""
            {
              "cniVersion": "1.0.0",
              "name": "{{network.Name}}",
              "plugins": [
                {
                  "type": "bridge",
                  "bridge": "{{network.Bridge}}",
                  "isGateway": true,
                  "ipMasq": false,
                  "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": "10.78.{{third}}.0/24" }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": "{{Path.Combine(network.Directory, "ipam")}}"
                  }
                }{{tap}}
              ]
            }
            """);
        return network;
    }

    /// <summary>The addresses host-local has handed out and not taken back (its files named by address).</summary>
    public IReadOnlyList<IPAddress> Allocations() =>
        System.IO.Directory.Exists(IpamDirectory)
            ? [.. System.IO.Directory.GetFiles(IpamDirectory).Select(Path.GetFileName).Select(f => IPAddress.TryParse(f, out IPAddress? a) ? a : null).OfType<IPAddress>()]
            : [];

    /// <summary>The interfaces on the bridge (none when the bridge is not there).</summary>
    public IReadOnlyList<string> BridgePorts()
    {
        string ports = $"/sys/class/net/{Bridge}/brif";
        return System.IO.Directory.Exists(ports) ? [.. System.IO.Directory.GetFileSystemEntries(ports).Select(Path.GetFileName).OfType<string>()] : [];
    }

    /// <summary>What the network holds, for assertion messages.</summary>
    public string Describe() =>
        $"allocations: [{string.Join(", ", Allocations())}], ports on {Bridge}: [{string.Join(", ", BridgePorts())}], netns: [{string.Join(", ", System.IO.Directory.Exists("/var/run/netns") ? System.IO.Directory.GetFiles("/var/run/netns") : [])}]";

    public async ValueTask DisposeAsync()
    {
        if (System.IO.Directory.Exists($"/sys/class/net/{Bridge}"))
        {
            await ProcessRunner.RunAsync("ip", ["link", "del", Bridge], TimeSpan.FromSeconds(30));
        }

        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
