using System.Diagnostics;

namespace FirecrackerContainerd.TestSupport;

/// <summary>Runs a host tool a test needs; a missing tool or a failure fails the test with what to install or the tool's stderr.</summary>
internal static class Tool
{
    /// <summary>Runs <paramref name="program"/> and returns its stdout and stderr; fails the test unless it exits 0.</summary>
    /// <param name="program">The tool, on PATH or by path.</param>
    /// <param name="args">Its arguments.</param>
    /// <param name="packages">The Debian packages that provide it, named when it is missing.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public static async Task<(string Stdout, string Stderr)> RunAsync(string program, IEnumerable<string> args, string packages, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Assert.Fail($"{program} is needed (apt-get install {packages}): {e.Message}");
            throw;
        }

        using (process)
        {
            Task<string> stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            Task<string> stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            string errors = await stderr;
            Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', info.ArgumentList)} exited with {process.ExitCode}: {errors}");
            return (await stdout, errors);
        }
    }
}
