using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using FirecrackerContainerd.Cri.V1;
using Grpc.Net.Client;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// scripts/install into a private containerd (the version under test): its prefix, main configuration and runtime
/// configuration in a temporary directory, binaries from this build (--staging, no second publish). containerd then
/// runs a microVM through the installed shim wrapper and runtime configuration and lists the CRI handler; a second
/// install changes nothing and --uninstall leaves the main configuration as it was and no installed file behind.
/// </summary>
[Trait("Category", "Install")]
public sealed class InstallTests(ITestOutputHelper output)
{
    private const string Namespace = "fcinstall";
    private static readonly TimeSpan InstallTimeout = TimeSpan.FromMinutes(15);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    // A VM boot under TCG on a loaded machine.
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Install_serves_a_microvm_and_the_cri_handler_a_second_install_changes_nothing_and_uninstall_restores_everything()
    {
        using var timeout = new CancellationTokenSource(InstallTimeout);
        var layout = new InstallLayout(System.IO.Directory.CreateTempSubdirectory("fcin-").FullName);
        ContainerdProcess? containerd = null;
        string id = "install-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        bool uninstalled = false;
        try
        {
            await layout.PrepareAsync(await AgentBinary.RequireAsync(timeout.Token));
            byte[] original = await File.ReadAllBytesAsync(layout.MainConfig);

            CommandResult install = await InstallAsync(layout.InstallArguments);
            Assert.True(install.ExitCode == 0, $"scripts/install failed: {install.Output}");
            Assert.Contains("kind: RuntimeClass", install.Stdout, StringComparison.Ordinal);
            Assert.Contains("handler: aws-firecracker", install.Stdout, StringComparison.Ordinal);
            Assert.True(File.Exists(layout.DropIn), $"scripts/install wrote no drop-in {layout.DropIn}: {install.Output}");
            IReadOnlyDictionary<string, string> installed = layout.Snapshot();

            containerd = new ContainerdProcess(
                ContainerdFixture.ContainerdBinary, ContainerdFixture.CtrBinary, layout.MainConfig, layout.Address, layout.Root,
                new Dictionary<string, string>
                {
                    // Only the installed wrappers before containerd's own directory (its runc shim), then the rest.
                    ["PATH"] = string.Join(':', layout.PrefixBin, Path.GetDirectoryName(ContainerdFixture.ContainerdBinary),
                        Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin"),

                    // Empty: the shim wrapper fills in the runtime configuration it was installed with.
                    ["FIRECRACKER_CONTAINERD_RUNTIME_CONFIG"] = string.Empty,
                    ["TMPDIR"] = layout.Temp,
                });
            await containerd.StartAsync();

            // The guest kernel named by the installed runtime configuration: only the installed wrapper points the
            // shim at it, and it is not the host's.
            string release = await InstalledKernelReleaseAsync(layout);
            Assert.NotEqual((await File.ReadAllTextAsync("/proc/sys/kernel/osrelease")).Trim(), release);
            CommandResult import = await CtrAsync(layout, CommandTimeout, "image", "import", "--snapshotter", "native", layout.BusyboxTar);
            Assert.True(import.ExitCode == 0, $"ctr image import failed: {import.Output}");
            CommandResult run = await CtrAsync(layout, RunTimeout,
                "run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", BusyboxImage.Name, id, "sh", "-c", "echo installed; uname -r");
            Assert.True(run.ExitCode == 0, $"ctr run through the installed shim failed: {run.Output}\ncontainerd {ContainerdFixture.ContainerdBinary}:\n{Tail(containerd.Log)}");
            Assert.Equal(["installed", release], run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));

            JsonElement handler = await CriHandlerAsync(layout.Address, "aws-firecracker");
            Assert.Equal("aws.firecracker", handler.GetProperty("runtimeType").GetString());

            await containerd.StopAsync();
            containerd = null;

            CommandResult again = await InstallAsync(layout.InstallArguments);
            Assert.True(again.ExitCode == 0, $"the second scripts/install failed: {again.Output}");
            Assert.Equal(installed, layout.Snapshot());

            CommandResult uninstall = await InstallAsync(["--uninstall", "--prefix", layout.Prefix]);
            uninstalled = true;
            Assert.True(uninstall.ExitCode == 0, $"scripts/install --uninstall failed: {uninstall.Output}");
            Assert.Equal(original, await File.ReadAllBytesAsync(layout.MainConfig));
            Assert.False(File.Exists(layout.DropIn), $"--uninstall left the drop-in {layout.DropIn}");
            Assert.False(File.Exists(layout.RuntimeConfig), $"--uninstall left the runtime configuration {layout.RuntimeConfig}");
            Assert.True(!System.IO.Directory.Exists(layout.Prefix) || !System.IO.Directory.EnumerateFileSystemEntries(layout.Prefix, "*", SearchOption.AllDirectories).Any(),
                $"--uninstall left under {layout.Prefix}: {string.Join(", ", System.IO.Directory.Exists(layout.Prefix) ? System.IO.Directory.EnumerateFileSystemEntries(layout.Prefix, "*", SearchOption.AllDirectories) : [])}");
        }
        finally
        {
            await CleanUpAsync(layout, containerd, id, uninstalled);
        }
    }

    private async Task<CommandResult> InstallAsync(string[] args)
    {
        CommandResult result = await ProcessRunner.RunAsync(Path.Combine(GuestImage.RepoRoot(), "scripts", "install"), args, InstallTimeout);
        output.WriteLine($"scripts/install {string.Join(' ', args)}: exit {result.ExitCode}\n{result.Stderr}");
        return result;
    }

    private static Task<CommandResult> CtrAsync(InstallLayout layout, TimeSpan bound, params string[] args) =>
        ProcessRunner.RunAsync(ContainerdFixture.CtrBinary, ["--address", layout.Address, "-n", Namespace, .. args], bound);

    private static async Task<string> InstalledKernelReleaseAsync(InstallLayout layout)
    {
        using JsonDocument runtime = JsonDocument.Parse(await File.ReadAllBytesAsync(layout.RuntimeConfig));
        string initrd = runtime.RootElement.GetProperty("initrd_path").GetString() ?? string.Empty;
        Assert.StartsWith(layout.Prefix + "/", initrd, StringComparison.Ordinal);
        using JsonDocument manifest = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(Path.GetDirectoryName(initrd)!, "manifest.json")));
        return manifest.RootElement.GetProperty("kernelRelease").GetString()
            ?? throw new InvalidOperationException($"{Path.GetDirectoryName(initrd)}/manifest.json has no kernelRelease");
    }

    /// <summary>
    /// The runtime handler <paramref name="name"/> in the CRI plugin's configuration, as CRI Status (verbose) reports it
    /// in info["config"]; its place in that JSON differs between containerd 1.x and 2.x, so it is looked up by name.
    /// </summary>
    private static async Task<JsonElement> CriHandlerAsync(string address, string name)
    {
        using var channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = UnixSocketHandler(address) });
        StatusResponse status = await new RuntimeService.RuntimeServiceClient(channel).StatusAsync(new StatusRequest { Verbose = true });
        Assert.True(status.Info.TryGetValue("config", out string? config), $"CRI Status (verbose) has no info[\"config\"]: {string.Join(", ", status.Info.Keys)}");
        using JsonDocument document = JsonDocument.Parse(config);
        return FindProperty(document.RootElement, name) is { } handler
            ? handler.Clone()
            : throw new Xunit.Sdk.XunitException($"the CRI configuration lists no runtime handler {name}: {config}");
    }

    private static JsonElement? FindProperty(JsonElement element, string name)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty property in element.EnumerateObject())
            {
                if (property.Name == name && property.Value.ValueKind == JsonValueKind.Object)
                {
                    return property.Value;
                }

                if (FindProperty(property.Value, name) is { } found)
                {
                    return found;
                }
            }
        }

        return null;
    }

    private static SocketsHttpHandler UnixSocketHandler(string address) => new()
    {
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(address), cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    private static string Tail(string log) => log.Length > 6000 ? log[^6000..] : log;

    /// <summary>
    /// Whatever a failed run left: containerd, the shim and its QEMU (by the VM's id), the installed files (through
    /// --uninstall), mounts and the directory.
    /// </summary>
    private async Task CleanUpAsync(InstallLayout layout, ContainerdProcess? containerd, string id, bool uninstalled)
    {
        if (containerd is not null)
        {
            await CtrAsync(layout, CommandTimeout, "task", "kill", "--signal", "SIGKILL", id);
            await CtrAsync(layout, CommandTimeout, "task", "rm", "--force", id);
            await CtrAsync(layout, CommandTimeout, "container", "rm", id);
            await containerd.StopAsync();
        }

        foreach (int pid in ProcessRunner.FindProcesses("containerd-shim", layout.Address).Concat(ProcessRunner.FindProcesses("qemu-system", $"{Namespace}#{id}")))
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
            catch (ArgumentException)
            {
                // Already gone.
            }
        }

        if (!uninstalled && File.Exists(Path.Combine(layout.Prefix, "lib", "firecracker-containerd", "install.state")))
        {
            await InstallAsync(["--uninstall", "--prefix", layout.Prefix]);
        }

        foreach (string mountPoint in ContainerdFixture.MountsBelow(layout.Root).OrderByDescending(m => m.Length))
        {
            await ProcessRunner.RunAsync("umount", ["--lazy", mountPoint], CommandTimeout);
        }

        System.IO.Directory.Delete(layout.Root, recursive: true);
    }
}

/// <summary>
/// The temporary directory of one install: the operator's containerd configuration (etc), the prefix, the staged
/// binaries of this build, and the private containerd's root, state and socket.
/// </summary>
internal sealed record InstallLayout(string Root)
{
    public string Etc => Path.Combine(Root, "etc");

    /// <summary>containerd's main configuration, which the install adds its import to.</summary>
    public string MainConfig => Path.Combine(Etc, "config.toml");

    /// <summary>Where scripts/install puts the drop-in by default: conf.d beside the main configuration.</summary>
    public string DropIn => Path.Combine(Etc, "conf.d", "firecracker-containerd.toml");

    public string RuntimeConfig => Path.Combine(Etc, "firecracker-runtime.json");

    public string Prefix => Path.Combine(Root, "prefix");

    public string PrefixBin => Path.Combine(Prefix, "bin");

    /// <summary>scripts/lib/publish's layout, pointing at this build's outputs.</summary>
    public string Staging => Path.Combine(Root, "staging");

    public string Address => Path.Combine(Root, "c.sock");

    public string Temp => Path.Combine(Root, "tmp");

    public string BusyboxTar => Path.Combine(Root, "busybox.tar");

    public string[] InstallArguments =>
    [
        "--prefix", Prefix,
        "--containerd-bin", Path.GetDirectoryName(ContainerdFixture.ContainerdBinary)!,
        "--containerd-config", MainConfig,
        "--runtime-config", RuntimeConfig,
        "--staging", Staging,
    ];

    /// <summary>
    /// Writes the operator's configuration (scripts/lib/containerd-config --cri for the version under test, without
    /// the handler the install adds), the staging directory (links to the native shim, control daemon, fcctl, fc-jail and fc-vhost-vsock as scripts/lib/publish lays them out, and
    /// to <paramref name="agent"/>) and the busybox image.
    /// </summary>
    public async Task PrepareAsync(string agent)
    {
        System.IO.Directory.CreateDirectory(Etc);
        System.IO.Directory.CreateDirectory(Temp);
        string cniConf = System.IO.Directory.CreateDirectory(Path.Combine(Root, "cni", "conf")).FullName;
        string cniBin = System.IO.Directory.CreateDirectory(Path.Combine(Root, "cni", "bin")).FullName;
        CommandResult config = await ProcessRunner.RunAsync(
            Path.Combine(GuestImage.RepoRoot(), "scripts", "lib", "containerd-config"),
            ["--cri", BusyboxImage.PauseName, cniConf, cniBin, ContainerdFixture.ContainerdBinary, Root, Address, "debug"],
            TimeSpan.FromSeconds(60));
        Assert.True(config.ExitCode == 0, $"scripts/lib/containerd-config --cri failed: {config.Output}");
        string text = config.Stdout;
        int handler = text.IndexOf("runtimes.aws-firecracker]", StringComparison.Ordinal);
        Assert.True(handler > 0, $"scripts/lib/containerd-config --cri declares no aws-firecracker handler:\n{text}");
        await File.WriteAllTextAsync(MainConfig, text[..text.LastIndexOf('\n', handler)] + "\n");

        System.IO.Directory.CreateDirectory(Staging);
        foreach (string binary in new[]
                 {
                     await NativeBinary.ShimAsync(CancellationToken.None), await NativeBinary.ControlAsync(CancellationToken.None),
                     await NativeBinary.FcctlAsync(CancellationToken.None), await NativeBinary.JailLauncherAsync(CancellationToken.None),
                     await NativeBinary.VsockDeviceAsync(CancellationToken.None),
                 })
        {
            File.CreateSymbolicLink(Path.Combine(Staging, Path.GetFileName(Path.GetDirectoryName(binary))!), Path.GetDirectoryName(binary)!);
        }

        File.CreateSymbolicLink(Path.Combine(Staging, "agent"), Path.GetDirectoryName(agent)!);
        BusyboxImage.Write(BusyboxTar);
    }

    /// <summary>Every file the install wrote or edited, by path: its SHA-256 and last write time.</summary>
    public IReadOnlyDictionary<string, string> Snapshot() =>
        new[] { Prefix, Etc }
            .SelectMany(dir => System.IO.Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
            .Order(StringComparer.Ordinal)
            .ToDictionary(
                file => file,
                file => $"{Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)))} {File.GetLastWriteTimeUtc(file):O}");
}
