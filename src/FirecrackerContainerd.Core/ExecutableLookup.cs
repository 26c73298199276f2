namespace FirecrackerContainerd.Core;

/// <summary>Finds a program as execvp(3) would run it: a name with a slash as it is, any other name on the search path.</summary>
/// <remarks>
/// A candidate counts only when it is a file with an execute bit, so a name that is on the search path but not
/// executable is passed over for the next directory, as exec would pass it over. Every project that starts a program
/// by name (the VMMs, their probes, the guest's OCI runtime) finds it here, so they all agree on what "installed" means.
/// </remarks>
public static class ExecutableLookup
{
    /// <summary>The search path when <c>PATH</c> is unset (the guest's init may start the agent without one).</summary>
    public const string DefaultSearchPath = "/usr/bin:/bin:/usr/sbin:/sbin";

    private const UnixFileMode AnyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>Finds <paramref name="nameOrPath"/> on this process's <c>PATH</c>; null when it is missing or not executable.</summary>
    /// <param name="nameOrPath">A program name, or a path (anything with a slash), which is used as it is.</param>
    public static string? Find(string nameOrPath) => Find(nameOrPath, Environment.GetEnvironmentVariable("PATH"));

    /// <summary>Finds <paramref name="nameOrPath"/> in <paramref name="searchPath"/>; null when it is missing or not executable.</summary>
    /// <param name="nameOrPath">A program name, or a path (anything with a slash), which is used as it is.</param>
    /// <param name="searchPath">Directories separated by ':' (empty entries are skipped); null means <see cref="DefaultSearchPath"/>.</param>
    /// <returns>The path exec would run: <paramref name="nameOrPath"/> itself when it has a slash, else the first match's directory joined with the name.</returns>
    public static string? Find(string nameOrPath, string? searchPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(nameOrPath);
        if (nameOrPath.Contains('/', StringComparison.Ordinal))
        {
            return IsExecutableFile(nameOrPath) ? nameOrPath : null;
        }

        foreach (string directory in (searchPath ?? DefaultSearchPath).Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, nameOrPath);
            if (IsExecutableFile(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    // File.Exists is false for directories and dangling links; the file can still go away before its mode is read.
    private static bool IsExecutableFile(string path)
    {
        try
        {
            return File.Exists(path) && (File.GetUnixFileMode(path) & AnyExecute) != 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
