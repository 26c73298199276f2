using System.Diagnostics;

namespace FirecrackerContainerd.TestSupport;

/// <summary>The guest kernel and initramfs, built (or found in the cache) by tools/image-builder.</summary>
internal sealed record GuestImage(string Directory)
{
    /// <summary>The kernel tools/image-builder builds from Debian's linux-source-6.1: the default.</summary>
    public const string OurKernel = "ours";

    /// <summary>Debian's cloud kernel with its modules: the fallback.</summary>
    public const string DebianKernel = "debian";

    private static readonly SemaphoreSlim BuildLock = new(1, 1);
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, GuestImage> Built = new();

    /// <summary>The ELF vmlinux both VMMs boot (QEMU through its PVH entry).</summary>
    public string Kernel => Path.Combine(Directory, "vmlinux");

    public string Initrd => Path.Combine(Directory, "initrd.img");

    /// <summary>The same files as <see cref="Initrd"/> as a read-only ext4 root drive: images of our kernel have one, Debian's none.</summary>
    public string? RootDrive => File.Exists(Path.Combine(Directory, "rootfs.ext4")) ? Path.Combine(Directory, "rootfs.ext4") : null;

    /// <summary>
    /// Runs the image builder (cached by input hash) with an optional agent and the kernel FC_GUEST_KERNEL names (ours
    /// unless it says debian), once per agent path and kernel in this process; fails the test with the builder's output.
    /// </summary>
    public static Task<GuestImage> BuildAsync(string? agent, CancellationToken cancellationToken) =>
        BuildAsync(agent, Environment.GetEnvironmentVariable("FC_GUEST_KERNEL") is { Length: > 0 } kernel ? kernel : OurKernel, cancellationToken);

    /// <summary>Runs the image builder with an optional agent and <paramref name="kernel"/> (<see cref="OurKernel"/> or <see cref="DebianKernel"/>).</summary>
    public static async Task<GuestImage> BuildAsync(string? agent, string kernel, CancellationToken cancellationToken)
    {
        string key = $"{kernel}\n{agent}";
        if (Built.TryGetValue(key, out GuestImage? built))
        {
            return built;
        }

        string builder = Path.Combine(RepoRoot(), "tools", "image-builder", "build");
        var info = new ProcessStartInfo(builder) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (agent is not null)
        {
            info.ArgumentList.Add("--agent");
            info.ArgumentList.Add(agent);
        }

        info.ArgumentList.Add("--kernel");
        info.ArgumentList.Add(kernel);

        await BuildLock.WaitAsync(cancellationToken);
        try
        {
            using CrossProcessLock shared = await CrossProcessLock.AcquireAsync(Path.Combine(RepoRoot(), "artifacts", ".image.lock"), cancellationToken);
            using Process process = Process.Start(info)!;
            Task<string> stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            Task<string> stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            if (process.ExitCode != 0)
            {
                Assert.Fail($"tools/image-builder/build failed with status {process.ExitCode}:\n{await stderr}");
            }

            return Built[key] = new GuestImage((await stdout).Trim().Split('\n')[^1]);
        }
        finally
        {
            BuildLock.Release();
        }
    }

    /// <summary>The repository root: the nearest parent holding the solution file.</summary>
    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "FirecrackerContainerd.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no FirecrackerContainerd.slnx above {AppContext.BaseDirectory}");
    }
}
