using System.Globalization;

namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>
/// An optional audit trail: when <c>FIRECRACKER_CONTAINERD_SHIM_INVOCATION_LOG</c> names a file (containerd passes its
/// environment to shims), every invocation appends one line saying what it was asked and how it ended.
/// </summary>
public static class InvocationLog
{
    /// <summary>The environment variable naming the log file.</summary>
    public const string EnvironmentVariable = "FIRECRACKER_CONTAINERD_SHIM_INVOCATION_LOG";

    /// <summary>Appends <paramref name="line"/> with a timestamp and pid; failures are ignored.</summary>
    public static void Append(string line)
    {
        string? path = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrEmpty(path))
        {
            return;
        }

        try
        {
            File.AppendAllText(path, string.Create(CultureInfo.InvariantCulture,
                $"{DateTimeOffset.UtcNow:O} pid={Environment.ProcessId} {line.Replace('\n', ' ')}\n"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // An audit trail must never change the outcome of the invocation.
        }
    }
}
