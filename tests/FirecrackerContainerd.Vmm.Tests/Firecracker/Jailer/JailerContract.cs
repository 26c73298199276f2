using System.Globalization;

namespace FirecrackerContainerd.Vmm.Tests.Firecracker.Jailer;

/// <summary>
/// The jailer's documented command line (Firecracker's docs/jailer.md and its argument parser in src/jailer), written
/// down as checks: which arguments exist, which take a value, which may repeat, which are required, and the shape
/// each value must have. <see cref="Violations"/> lists every way an argv breaks it.
/// </summary>
internal static class JailerContract
{
    /// <summary>Arguments that are flags (no value).</summary>
    public static readonly IReadOnlySet<string> Flags = new HashSet<string>(StringComparer.Ordinal) { "daemonize", "new-pid-ns", "version" };

    /// <summary>Arguments that take one value and may appear once.</summary>
    public static readonly IReadOnlySet<string> Single = new HashSet<string>(StringComparer.Ordinal)
    {
        "id", "exec-file", "uid", "gid", "chroot-base-dir", "netns", "cgroup-version", "parent-cgroup",
    };

    /// <summary>Arguments that take one value each time and may repeat.</summary>
    public static readonly IReadOnlySet<string> Multiple = new HashSet<string>(StringComparer.Ordinal) { "cgroup", "resource-limit" };

    /// <summary>Arguments the parser requires.</summary>
    public static readonly IReadOnlyList<string> Required = ["id", "exec-file", "uid", "gid"];

    /// <summary>The resources <c>--resource-limit</c> knows.</summary>
    public static readonly IReadOnlySet<string> Resources = new HashSet<string>(StringComparer.Ordinal) { "fsize", "no-file" };

    /// <summary>Splits <paramref name="argv"/> (after the program) at the first <c>--</c>: the jailer's part and Firecracker's.</summary>
    public static (IReadOnlyList<string> Jailer, IReadOnlyList<string> Firecracker) Split(IReadOnlyList<string> argv)
    {
        int separator = argv.ToList().IndexOf("--");
        return separator < 0 ? (argv, []) : (argv.Take(separator).ToList(), argv.Skip(separator + 1).ToList());
    }

    /// <summary>The jailer's arguments by name: flags map to no values, the others to each value given.</summary>
    public static IReadOnlyDictionary<string, List<string>> Parse(IReadOnlyList<string> argv)
    {
        var parsed = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var (jailer, _) = Split(argv);
        for (int i = 0; i < jailer.Count; i++)
        {
            string name = jailer[i].StartsWith("--", StringComparison.Ordinal) ? jailer[i][2..] : jailer[i];
            var values = parsed.TryGetValue(name, out var v) ? v : parsed[name] = [];
            if (!Flags.Contains(name) && i + 1 < jailer.Count)
            {
                values.Add(jailer[++i]);
            }
        }

        return parsed;
    }

    /// <summary>Every way <paramref name="argv"/> breaks the contract; empty when the jailer would accept it.</summary>
    public static IReadOnlyList<string> Violations(IReadOnlyList<string> argv)
    {
        var violations = new List<string>();
        var (jailer, firecracker) = Split(argv);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var values = new List<(string Name, string Value)>();
        for (int i = 0; i < jailer.Count; i++)
        {
            string arg = jailer[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                violations.Add($"\"{arg}\" is not an argument (expected --name)");
                continue;
            }

            string name = arg[2..];
            if (!Flags.Contains(name) && !Single.Contains(name) && !Multiple.Contains(name))
            {
                violations.Add($"--{name} is not a jailer argument");
                continue;
            }

            if (!seen.Add(name) && !Multiple.Contains(name))
            {
                violations.Add($"--{name} is given more than once");
            }

            if (Flags.Contains(name))
            {
                continue;
            }

            if (i + 1 >= jailer.Count || jailer[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                violations.Add($"--{name} has no value");
                continue;
            }

            values.Add((name, jailer[++i]));
        }

        violations.AddRange(Required.Where(r => !seen.Contains(r)).Select(r => $"--{r} is required"));
        foreach (var (name, value) in values)
        {
            if (ValueProblem(name, value) is { } problem)
            {
                violations.Add($"--{name} {value}: {problem}");
            }
        }

        if (firecracker.Any(a => a == "--id" || a.StartsWith("--id=", StringComparison.Ordinal)))
        {
            violations.Add("Firecracker's --id is passed by the jailer itself and must not follow --");
        }

        return violations;
    }

    /// <summary>What is wrong with <paramref name="value"/> for <c>--<paramref name="name"/></c>, or null.</summary>
    public static string? ValueProblem(string name, string value) => name switch
    {
        // utils::validators::validate_instance_id: 1..64 bytes, alphanumeric or '-'.
        "id" => value.Length is >= 1 and <= 64 && value.All(c => c == '-' || char.IsAsciiLetterOrDigit(c)) ? null : "not 1..64 of [A-Za-z0-9-]",
        // Env::validate_exec_file canonicalizes it and wants a regular file.
        "exec-file" => !Path.IsPathFullyQualified(value) ? "not an absolute path" : !File.Exists(value) ? "no such file" : null,
        "uid" or "gid" => uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out _) ? null : "not a u32",
        // Canonicalized, then it must be a directory.
        "chroot-base-dir" => Directory.Exists(value) ? null : "not an existing directory",
        "netns" => File.Exists(value) ? null : "no such file",
        "cgroup-version" => value is "1" or "2" ? null : "not 1 or 2",
        "parent-cgroup" => Path.IsPathRooted(value) || value.Split('/').Any(p => p is "." or "..") ? "has a root, '.' or '..' component" : null,
        "cgroup" => CgroupProblem(value),
        "resource-limit" => ResourceProblem(value),
        _ => null,
    };

    // Env::new: split on '=', exactly two parts, the value not empty, the file relative and without '.'/'..'
    // components; get_controller_from_filename: the controller is what precedes the first '.', which must exist.
    private static string? CgroupProblem(string value)
    {
        string[] parts = value.Split('=');
        if (parts.Length != 2 || parts[1].Length == 0)
        {
            return "not file=value with a value";
        }

        string file = parts[0];
        if (Path.IsPathRooted(file) || file.Split('/').Any(p => p is "." or ".."))
        {
            return "the file has a root, '.' or '..' component";
        }

        return file.Split('.').Length < 2 || file.Split('.')[0].Length == 0 ? "the file names no controller (controller.property)" : null;
    }

    // Env::parse_resource_limits: split_once('='), a known resource, a u64 value.
    private static string? ResourceProblem(string value)
    {
        int equals = value.IndexOf('=', StringComparison.Ordinal);
        if (equals < 0)
        {
            return "not resource=value";
        }

        return !Resources.Contains(value[..equals]) ? "unknown resource"
            : ulong.TryParse(value[(equals + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out _) ? null : "not a u64";
    }
}
