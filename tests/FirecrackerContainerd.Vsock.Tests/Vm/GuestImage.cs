using System.Diagnostics;

namespace FirecrackerContainerd.Vsock.Tests.Vm;

/// <summary>The guest kernel and initramfs from tools/image-builder, built once per test run (the
/// builder itself caches across runs).</summary>
public sealed class GuestImage
{
    private static readonly SemaphoreSlim BuildLock = new(1, 1);
    private static GuestImage? built;

    private GuestImage(string directory, TimeSpan buildTime)
    {
        Directory = directory;
        BuildTime = buildTime;
    }

    public string Directory { get; }

    public TimeSpan BuildTime { get; }

    public string Kernel => Path.Combine(Directory, "vmlinuz");

    public string Initrd => Path.Combine(Directory, "initrd.img");

    public static async Task<GuestImage> GetAsync()
    {
        await BuildLock.WaitAsync();
        try
        {
            return built ??= await BuildAsync();
        }
        finally
        {
            BuildLock.Release();
        }
    }

    private static async Task<GuestImage> BuildAsync()
    {
        string builder = Path.Combine(RepositoryRoot(), "tools", "image-builder", "build");
        Assert.True(File.Exists(builder), $"the image builder {builder} is missing");
        var clock = Stopwatch.StartNew();
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(builder);
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"tools/image-builder/build failed with {process.ExitCode}:\n{await stderr}");
        string directory = (await stdout).Trim().Split('\n')[^1];
        Assert.True(File.Exists(Path.Combine(directory, "vmlinuz")), $"the image builder printed '{directory}', which has no vmlinuz");
        return new GuestImage(directory, clock.Elapsed);
    }

    internal static string RepositoryRoot()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "FirecrackerContainerd.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no FirecrackerContainerd.slnx above {AppContext.BaseDirectory}");
    }
}
