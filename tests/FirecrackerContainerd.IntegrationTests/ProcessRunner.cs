using System.Diagnostics;
using System.Text;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>The result of a finished command.</summary>
/// <param name="ExitCode">Process exit code.</param>
/// <param name="StdoutBytes">Everything written to stdout, as bytes.</param>
/// <param name="Stderr">Everything written to stderr.</param>
public sealed record CommandResult(int ExitCode, byte[] StdoutBytes, string Stderr)
{
    public string Stdout => Encoding.UTF8.GetString(StdoutBytes);

    public string Output => Stdout + Stderr;
}

/// <summary>Runs short-lived commands with a time bound, killing them if they overrun.</summary>
internal static class ProcessRunner
{
    public static async Task<CommandResult> RunAsync(
        string file, IEnumerable<string> args, TimeSpan timeout, string? workingDirectory = null,
        IReadOnlyDictionary<string, string>? environment = null, byte[]? stdin = null)
    {
        var info = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = workingDirectory ?? Directory.GetCurrentDirectory(),
        };
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        if (stdin is not null)
        {
            await process.StandardInput.BaseStream.WriteAsync(stdin);
        }

        process.StandardInput.Close();
        var stdoutBuffer = new MemoryStream();
        var stdout = process.StandardOutput.BaseStream.CopyToAsync(stdoutBuffer);
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {timeout.TotalSeconds} s");
        }

        await stdout;
        return new CommandResult(process.ExitCode, stdoutBuffer.ToArray(), await stderr);
    }

    /// <summary>The full path of <paramref name="name"/> on PATH, or null.</summary>
    public static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);

    /// <summary>Pids of live processes whose command line contains every one of <paramref name="needles"/>.</summary>
    public static IReadOnlyList<int> FindProcesses(params string[] needles)
    {
        var found = new List<int>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out int pid) && CommandLineOf(pid) is { } cmdline &&
                needles.All(n => cmdline.Contains(n, StringComparison.Ordinal)))
            {
                found.Add(pid);
            }
        }

        return found;
    }

    /// <summary>The arguments of process <paramref name="pid"/> (argv[0] first), or null once it is gone.</summary>
    public static string[]? ArgumentsOf(int pid)
    {
        try
        {
            return Encoding.UTF8.GetString(File.ReadAllBytes($"/proc/{pid}/cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The command line of process <paramref name="pid"/>, arguments joined by spaces, or null once it is gone.</summary>
    public static string? CommandLineOf(int pid) => ArgumentsOf(pid) is { } args ? string.Join(' ', args) : null;
}
