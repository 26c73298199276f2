namespace FirecrackerContainerd.Agent.Cgroups;

/// <summary>Finds a process's cgroup v2 directory: its <c>0::/path</c> line under the cgroup2 mount.</summary>
internal static class CgroupLocator
{
    /// <summary>Where cgroup2 is mounted when /proc/self/mountinfo names no other place.</summary>
    public const string DefaultMount = "/sys/fs/cgroup";

    // Both files are a few lines; a larger one is not what the kernel writes.
    private const int MaxFileBytes = 1024 * 1024;

    /// <summary>The cgroup v2 directory of <paramref name="pid"/>, or null when it has none (or is gone).</summary>
    public static string? DirectoryOf(int pid)
    {
        string? relative = ParseUnifiedPath(ReadOrEmpty($"/proc/{pid}/cgroup"));
        return relative is null ? null : Resolve(ParseCgroup2Mount(ReadOrEmpty("/proc/self/mountinfo")) ?? DefaultMount, relative);
    }

    /// <summary>The path of the <c>0::</c> (cgroup v2) line of a /proc/&lt;pid&gt;/cgroup file; null when missing or malformed.</summary>
    public static string? ParseUnifiedPath(string procCgroup)
    {
        foreach (string line in procCgroup.Split('\n'))
        {
            if (!line.StartsWith("0::", StringComparison.Ordinal))
            {
                continue;
            }

            string path = line[3..].TrimEnd();

            // A cgroup that was removed reads "/path (deleted)"; relative or climbing paths are not the kernel's.
            if (!path.StartsWith('/') || path.EndsWith(" (deleted)", StringComparison.Ordinal) || path.Contains('\0')
                || path.Split('/').Any(segment => segment is ".." or "."))
            {
                return null;
            }

            return path;
        }

        return null;
    }

    /// <summary>The mount point of the first cgroup2 file system in a /proc/self/mountinfo file; null if none.</summary>
    public static string? ParseCgroup2Mount(string mountinfo)
    {
        foreach (string line in mountinfo.Split('\n'))
        {
            // id parent major:minor root mount-point options [optional fields...] - fstype source super-options
            string[] fields = line.Split(' ');
            int separator = Array.IndexOf(fields, "-");
            if (separator < 5 || separator + 1 >= fields.Length || fields[separator + 1] != "cgroup2")
            {
                continue;
            }

            string mountPoint = fields[4].Replace("\\040", " ", StringComparison.Ordinal);
            return mountPoint.StartsWith('/') ? mountPoint : null;
        }

        return null;
    }

    /// <summary><paramref name="relative"/> under <paramref name="mount"/>, refusing anything that resolves outside it.</summary>
    public static string? Resolve(string mount, string relative)
    {
        string root = Path.GetFullPath(mount);
        string full = Path.GetFullPath(Path.Join(root, relative));
        return full == root || full.StartsWith(Path.TrimEndingDirectorySeparator(root) + "/", StringComparison.Ordinal) ? full : null;
    }

    /// <summary>The text of a small kernel file; empty when it is missing, unreadable or too large.</summary>
    public static string ReadOrEmpty(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 0, FileOptions.None);
            byte[] buffer = new byte[MaxFileBytes];
            int total = 0;
            int n;
            while (total < buffer.Length && (n = stream.Read(buffer, total, buffer.Length - total)) > 0)
            {
                total += n;
            }

            return total == buffer.Length ? string.Empty : System.Text.Encoding.UTF8.GetString(buffer, 0, total);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return string.Empty;
        }
    }
}
