using System.Diagnostics;

namespace FirecrackerContainerd.TestSupport;

/// <summary>
/// The guest agent published as a native binary, republished when its sources are newer; one test process
/// at a time publishes (the others would otherwise find a half-written binary).
/// </summary>
internal static class AgentBinary
{
    private static readonly SemaphoreSlim PublishLock = new(1, 1);

    public static async Task<string> RequireAsync(CancellationToken cancellationToken)
    {
        string root = GuestImage.RepoRoot();
        string output = Path.Combine(root, "artifacts", "agent");
        string binary = Path.Combine(output, "fc-agent");
        await PublishLock.WaitAsync(cancellationToken);
        try
        {
            using CrossProcessLock shared = await CrossProcessLock.AcquireAsync(Path.Combine(root, "artifacts", ".agent.lock"), cancellationToken);
            DateTime newestSource = new[] { "Agent", "Shim", "Ttrpc", "Protos", "Core" }
                .SelectMany(p => Directory.EnumerateFiles(Path.Combine(root, "src", "FirecrackerContainerd." + p), "*.*", SearchOption.AllDirectories))
                .Where(f => !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal))
                .Select(File.GetLastWriteTimeUtc)
                .Max();
            if (File.Exists(binary) && File.GetLastWriteTimeUtc(binary) > newestSource)
            {
                return binary;
            }

            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string arg in new[] { "publish", Path.Combine(root, "src", "FirecrackerContainerd.Agent"), "-c", "Release", "-o", output, "-nologo" })
            {
                info.ArgumentList.Add(arg);
            }

            using Process publish = Process.Start(info)!;
            Task<string> stdout = publish.StandardOutput.ReadToEndAsync(cancellationToken);
            Task<string> stderr = publish.StandardError.ReadToEndAsync(cancellationToken);
            await publish.WaitForExitAsync(cancellationToken);
            if (publish.ExitCode != 0 || !File.Exists(binary))
            {
                Assert.Fail($"publishing the agent failed with status {publish.ExitCode}:\n{await stdout}\n{await stderr}");
            }

            File.SetLastWriteTimeUtc(binary, DateTime.UtcNow);
            return binary;
        }
        finally
        {
            PublishLock.Release();
        }
    }
}
