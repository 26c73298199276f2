using System.Diagnostics;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Control.Shims;

/// <summary>
/// Launches the real shim executable the way containerd does: <c>-namespace N -address A -publish-binary P -id V start</c>
/// in the bundle directory (it prints the socket address), and <c>... delete</c> for cleanup.
/// </summary>
/// <param name="ShimBinary">The shim executable.</param>
/// <param name="ContainerdAddress">containerd's socket address, passed as <c>-address</c>.</param>
/// <param name="PublishBinary">containerd's binary, passed as <c>-publish-binary</c>.</param>
/// <param name="RuntimeConfig">The runtime configuration for the shim (its environment's <see cref="RuntimeConfigVariable"/>); empty: the daemon's own environment.</param>
public sealed record ShimBinaryLauncher(string ShimBinary, string ContainerdAddress, string PublishBinary, string RuntimeConfig = "") : IShimLauncher
{
    /// <summary>The variable that names the shim's runtime configuration file.</summary>
    public const string RuntimeConfigVariable = "FIRECRACKER_CONTAINERD_RUNTIME_CONFIG";

    /// <summary>How long <c>start</c> and <c>delete</c> may take (start waits for the shim daemon to serve).</summary>
    public static readonly TimeSpan VerbTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Longest output read from the shim: an address is short, and anything longer is not one.</summary>
    private const int OutputLimit = 4096;

    /// <inheritdoc/>
    /// <exception cref="IOException">The shim failed, or printed another address than the one computed for the VM.</exception>
    public async Task StartAsync(ShimEndpoint endpoint, VmBundle bundle, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var (exitCode, stdout, stderr) = await RunAsync(endpoint, bundle, "start", cancellationToken).ConfigureAwait(false);
        if (exitCode != 0)
        {
            throw new IOException($"shim start for vm {endpoint.VmId} in namespace {endpoint.Namespace} ({ShimBinary}, bundle {bundle.RootPath}) exited with code {exitCode}: {stderr.Trim()}");
        }

        string printed = stdout.Trim();
        if (!string.Equals(printed, endpoint.Address, StringComparison.Ordinal))
        {
            throw new IOException($"shim start for vm {endpoint.VmId} in namespace {endpoint.Namespace} printed address \"{Clip(printed)}\", expected {endpoint.Address}");
        }
    }

    /// <inheritdoc/>
    public async Task CleanupAsync(ShimEndpoint endpoint, VmBundle bundle, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var (exitCode, _, stderr) = await RunAsync(endpoint, bundle, "delete", cancellationToken).ConfigureAwait(false);
        if (exitCode != 0)
        {
            throw new IOException($"shim delete for vm {endpoint.VmId} in namespace {endpoint.Namespace} ({ShimBinary}) exited with code {exitCode}: {stderr.Trim()}");
        }
    }

    private async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(
        ShimEndpoint endpoint, VmBundle bundle, string verb, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(ShimBinary)
        {
            UseShellExecute = false,
            WorkingDirectory = bundle.RootPath,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (RuntimeConfig.Length > 0)
        {
            info.Environment[RuntimeConfigVariable] = RuntimeConfig;
        }

        foreach (string arg in (string[])["-namespace", endpoint.Namespace, "-address", ContainerdAddress,
            "-publish-binary", PublishBinary, "-id", endpoint.VmId, "-bundle", bundle.RootPath, verb])
        {
            info.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new IOException($"shim {verb}: cannot start {ShimBinary}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new IOException($"shim {verb} for vm {endpoint.VmId}: cannot start {ShimBinary}: {e.Message}", e);
        }

        using (process)
        {
            process.StandardInput.Close();
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            limit.CancelAfter(VerbTimeout);
            var stdout = ReadLimitedAsync(process.StandardOutput, limit.Token);
            var stderr = ReadLimitedAsync(process.StandardError, limit.Token);
            try
            {
                await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
                return (process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                process.Kill();
                throw new IOException($"shim {verb} for vm {endpoint.VmId} in namespace {endpoint.Namespace} did not finish within {VerbTimeout.TotalSeconds:0} s", e);
            }
        }
    }

    private static async Task<string> ReadLimitedAsync(StreamReader reader, CancellationToken cancellationToken)
    {
        var buffer = new char[OutputLimit];
        int total = 0;
        while (total < buffer.Length)
        {
            int n = await reader.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        // Drain the rest so the shim never blocks on a full pipe.
        var sink = new char[OutputLimit];
        while (await reader.ReadAsync(sink.AsMemory(), cancellationToken).ConfigureAwait(false) > 0)
        {
        }

        return new string(buffer, 0, total);
    }

    private static string Clip(string text) => UntrustedText.Shown(text, 200);
}
