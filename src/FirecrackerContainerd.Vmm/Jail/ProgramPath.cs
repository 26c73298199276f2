namespace FirecrackerContainerd.Vmm.Jail;

/// <summary>Finds a program's absolute path the way execvp would: a jail binds the program at that path, so a bare name will not do.</summary>
public static class ProgramPath
{
    /// <summary>The absolute path of <paramref name="program"/> (a path, or a name looked up on PATH); throws naming it when it is nowhere.</summary>
    public static string Resolve(string program, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(program);
        if (program.Contains('/', StringComparison.Ordinal))
        {
            string full = Path.GetFullPath(program);
            return File.Exists(full) ? full : throw new FileNotFoundException($"{what} {full} does not exist", full);
        }

        string path = Environment.GetEnvironmentVariable("PATH") is { Length: > 0 } p ? p : "/usr/local/bin:/usr/bin:/bin";
        foreach (string directory in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, program);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"{what} {program} is not on PATH ({path})", program);
    }
}
