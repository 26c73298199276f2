using System.Diagnostics;

namespace FirecrackerContainerd.TestSupport;

/// <summary>
/// An executable of this repository published as a native AOT binary into <c>artifacts/&lt;part&gt;</c>, as
/// scripts/lib/publish does, and republished when the sources it is built from are newer; one test process at a time
/// publishes (the others would otherwise find a half-written binary). The tests run what is shipped, not a JIT build.
/// </summary>
internal static class NativeBinary
{
    private static readonly SemaphoreSlim PublishLock = new(1, 1);

    /// <summary>The shim (<c>containerd-shim-aws-firecracker</c>), published into <c>artifacts/shim</c>.</summary>
    /// <remarks>The jail's programs are published with it, into <c>artifacts/jail</c> and <c>artifacts/vsock</c>, where the shim looks for them by default.</remarks>
    public static async Task<string> ShimAsync(CancellationToken cancellationToken)
    {
        await JailLauncherAsync(cancellationToken);
        await VsockDeviceAsync(cancellationToken);
        return await RequireAsync("Runtime", "shim", "containerd-shim-aws-firecracker", ["Shim", "Vmm", "Vsock", "Network", "Ttrpc", "Protos", "Core"], cancellationToken);
    }

    /// <summary>The jail launcher (<c>fc-jail</c>), published into <c>artifacts/jail</c>.</summary>
    public static Task<string> JailLauncherAsync(CancellationToken cancellationToken) =>
        RequireAsync("Jail", "jail", "fc-jail", [], cancellationToken);

    /// <summary>The vsock device (<c>fc-vhost-vsock</c>), published into <c>artifacts/vsock</c>.</summary>
    public static Task<string> VsockDeviceAsync(CancellationToken cancellationToken) =>
        RequireAsync("VsockDevice", "vsock", "fc-vhost-vsock", ["Vsock"], cancellationToken);

    /// <summary>The control daemon (<c>firecracker-control</c>), published into <c>artifacts/control</c>.</summary>
    public static Task<string> ControlAsync(CancellationToken cancellationToken) =>
        RequireAsync("Control", "control", "firecracker-control", ["Shim", "Ttrpc", "Protos", "Core"], cancellationToken);

    /// <summary>fcctl, published into <c>artifacts/fcctl</c>.</summary>
    public static Task<string> FcctlAsync(CancellationToken cancellationToken) =>
        RequireAsync("Fcctl", "fcctl", "fcctl", ["Control", "Shim", "Ttrpc", "Protos", "Core"], cancellationToken);

    /// <summary>
    /// Publishes <c>src/FirecrackerContainerd.&lt;project&gt;</c> into <c>artifacts/&lt;part&gt;</c> unless its
    /// <paramref name="binaryName"/> there is newer than every source of the project and of <paramref name="dependencies"/>;
    /// returns the binary's path.
    /// </summary>
    public static async Task<string> RequireAsync(string project, string part, string binaryName, string[] dependencies, CancellationToken cancellationToken)
    {
        string root = GuestImage.RepoRoot();
        string output = Path.Combine(root, "artifacts", part);
        string binary = Path.Combine(output, binaryName);
        await PublishLock.WaitAsync(cancellationToken);
        try
        {
            using CrossProcessLock shared = await CrossProcessLock.AcquireAsync(Path.Combine(root, "artifacts", $".{part}.lock"), cancellationToken);
            DateTime newestSource = dependencies.Prepend(project).Select(p => Path.Combine(root, "src", "FirecrackerContainerd." + p))
                .Append(Path.Combine(root, "src", "Shared"))
                .SelectMany(d => Directory.EnumerateFiles(d, "*.*", SearchOption.AllDirectories))
                .Where(f => !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal))
                .Select(File.GetLastWriteTimeUtc)
                .Max();
            if (File.Exists(binary) && File.GetLastWriteTimeUtc(binary) > newestSource)
            {
                return binary;
            }

            // Published beside the output and renamed into it: a shim an earlier test left running keeps its file
            // (writing over a running executable fails with ETXTBSY).
            string staging = Path.Combine(root, "artifacts", $".{part}.publishing");
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string arg in new[] { "publish", Path.Combine(root, "src", "FirecrackerContainerd." + project), "-c", "Release", "-o", staging, "-nologo" })
            {
                info.ArgumentList.Add(arg);
            }

            using Process publish = Process.Start(info)!;
            Task<string> stdout = publish.StandardOutput.ReadToEndAsync(cancellationToken);
            Task<string> stderr = publish.StandardError.ReadToEndAsync(cancellationToken);
            await publish.WaitForExitAsync(cancellationToken);
            if (publish.ExitCode != 0 || !File.Exists(Path.Combine(staging, binaryName)))
            {
                Assert.Fail($"publishing {project} failed with status {publish.ExitCode}:\n{await stdout}\n{await stderr}");
            }

            Directory.CreateDirectory(output);
            foreach (string file in Directory.EnumerateFiles(staging))
            {
                File.Move(file, Path.Combine(output, Path.GetFileName(file)), overwrite: true);
            }

            Directory.Delete(staging, recursive: true);
            File.SetLastWriteTimeUtc(binary, DateTime.UtcNow);
            return binary;
        }
        finally
        {
            PublishLock.Release();
        }
    }
}
