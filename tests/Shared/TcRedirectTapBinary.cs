using System.Diagnostics;

namespace FirecrackerContainerd.TestSupport;

/// <summary>
/// The tc-redirect-tap plugin published as CNI runs it (native AOT) into <c>artifacts/tc-redirect-tap</c>,
/// republished when the plugin's or the library's sources are newer; one test process at a time publishes.
/// </summary>
internal static class TcRedirectTapBinary
{
    private static readonly SemaphoreSlim PublishLock = new(1, 1);

    /// <summary>The directory holding the <c>tc-redirect-tap</c> executable, for <c>CNI_PATH</c>.</summary>
    public static async Task<string> RequireDirectoryAsync()
    {
        string root = RepoRoot();
        string output = Path.Combine(root, "artifacts", "tc-redirect-tap");
        string binary = Path.Combine(output, "tc-redirect-tap");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        await PublishLock.WaitAsync(timeout.Token);
        try
        {
            using CrossProcessLock shared = await CrossProcessLock.AcquireAsync(Path.Combine(root, "artifacts", ".tc-redirect-tap.lock"), timeout.Token);
            DateTime newestSource = new[] { "TcRedirectTap", "Network" }
                .SelectMany(p => Directory.EnumerateFiles(Path.Combine(root, "src", "FirecrackerContainerd." + p), "*.*", SearchOption.AllDirectories))
                .Where(f => !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal))
                .Select(File.GetLastWriteTimeUtc)
                .Max();
            if (File.Exists(binary) && File.GetLastWriteTimeUtc(binary) > newestSource)
            {
                return output;
            }

            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string arg in new[] { "publish", Path.Combine(root, "src", "FirecrackerContainerd.TcRedirectTap"), "-c", "Release", "-o", output, "-nologo" })
            {
                info.ArgumentList.Add(arg);
            }

            using Process publish = Process.Start(info)!;
            Task<string> stdout = publish.StandardOutput.ReadToEndAsync(timeout.Token);
            Task<string> stderr = publish.StandardError.ReadToEndAsync(timeout.Token);
            await publish.WaitForExitAsync(timeout.Token);
            if (publish.ExitCode != 0 || !File.Exists(binary))
            {
                Assert.Fail($"publishing tc-redirect-tap failed with status {publish.ExitCode}:\n{await stdout}\n{await stderr}");
            }

            File.SetLastWriteTimeUtc(binary, DateTime.UtcNow);
            return output;
        }
        finally
        {
            PublishLock.Release();
        }
    }

    /// <summary>Runs the plugin as CNI does: the given environment (and nothing else of CNI's), the configuration on stdin.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(IReadOnlyDictionary<string, string> environment, string stdin)
    {
        string directory = await RequireDirectoryAsync();
        var info = new ProcessStartInfo(Path.Combine(directory, "tc-redirect-tap"))
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach ((string key, string value) in environment)
        {
            info.Environment[key] = value;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using Process process = Process.Start(info)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        Task<string> stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.StandardInput.WriteAsync(stdin);
        process.StandardInput.Close();
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>The repository root: the directory above the test assembly that holds the solution file.</summary>
    public static string RepoRoot()
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
