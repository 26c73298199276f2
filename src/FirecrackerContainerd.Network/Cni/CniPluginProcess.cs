using System.Diagnostics;
using System.Text;
using FirecrackerContainerd.Network.Namespaces;

namespace FirecrackerContainerd.Network.Cni;

/// <summary>
/// One run of one plugin executable: the CNI environment, the configuration on stdin, stdout read up to a limit,
/// the end of stderr kept, and a deadline after which the plugin (and anything it started) is killed.
/// </summary>
internal static class CniPluginProcess
{
    /// <summary>What a plugin run gave back.</summary>
    public sealed record Output(int ExitCode, string Stdout, string Stderr);

    /// <summary>Runs <paramref name="executable"/> and waits for it within the options' timeout.</summary>
    /// <exception cref="CniPluginException">It could not start, ran past the deadline, or printed too much.</exception>
    public static async Task<Output> RunAsync(
        string executable, string plugin, string command, string? network, IReadOnlyDictionary<string, string> environment, string stdin, CniRunnerOptions options, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(executable)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };

        // Plugins inherit the runtime's environment (they need PATH to find iptables), without stale CNI_ variables.
        foreach (string key in info.Environment.Keys.Where(k => k.StartsWith("CNI_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(key);
        }

        foreach ((string key, string value) in environment)
        {
            info.Environment[key] = value;
        }

        Process process;
        try
        {
            // A child starts in the namespace of the thread that forks it.
            process = options.RuntimeNetworkNamespace is string netns
                ? await NetworkNamespace.RunAsync(netns, () => Process.Start(info)!, cancellationToken).ConfigureAwait(false)
                : Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CniPluginException(plugin, command, network, null, $"cannot run {executable}: {e.Message}", string.Empty, e);
        }

        using (process)
        {
            TimeSpan timeout = options.Timeout ?? CniRunnerOptions.DefaultTimeout;
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            var stderr = new StringBuilder();
            Task<byte[]?> stdout = ReadBoundedAsync(process.StandardOutput.BaseStream, CniRunnerOptions.MaxOutputBytes, deadline.Token);
            Task errors = KeepEndAsync(process.StandardError, stderr, deadline.Token);
            try
            {
                await WriteStdinAsync(process, stdin, deadline.Token).ConfigureAwait(false);
                byte[]? output = await stdout.ConfigureAwait(false);
                if (output is null)
                {
                    Kill(process);
                    throw new CniPluginException(plugin, command, network, null, $"printed more than {CniRunnerOptions.MaxOutputBytes} bytes on stdout", Tail(stderr));
                }

                await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
                await errors.ConfigureAwait(false);
                return new Output(process.ExitCode, Encoding.UTF8.GetString(output), Tail(stderr));
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                Kill(process);
                throw new CniPluginException(plugin, command, network, null, $"did not finish within {timeout.TotalSeconds:0.#} s and was killed", Tail(stderr));
            }
            catch (OperationCanceledException)
            {
                Kill(process);
                throw;
            }
        }
    }

    private static async Task WriteStdinAsync(Process process, string stdin, CancellationToken cancellationToken)
    {
        try
        {
            await process.StandardInput.WriteAsync(stdin.AsMemory(), cancellationToken).ConfigureAwait(false);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The plugin exited (or closed stdin) without reading it all; its exit status tells why.
        }
    }

    // Null when the stream holds more than the limit.
    private static async Task<byte[]?> ReadBoundedAsync(Stream stream, int limit, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        byte[] chunk = new byte[16 * 1024];
        while (true)
        {
            int read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return buffer.ToArray();
            }

            if (buffer.Length + read > limit)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }
    }

    private static async Task KeepEndAsync(StreamReader reader, StringBuilder kept, CancellationToken cancellationToken)
    {
        char[] chunk = new char[4096];
        while (true)
        {
            int read = await reader.ReadAsync(chunk, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return;
            }

            lock (kept)
            {
                kept.Append(chunk, 0, read);
                if (kept.Length > CniRunnerOptions.MaxStderrChars)
                {
                    kept.Remove(0, kept.Length - CniRunnerOptions.MaxStderrChars);
                }
            }
        }
    }

    private static string Tail(StringBuilder kept)
    {
        lock (kept)
        {
            return kept.ToString();
        }
    }

    private static void Kill(Process process)
    {
        try
        {
            // The plugin and what it started (an IPAM plugin), all ours.
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It has exited already.
        }
    }
}
