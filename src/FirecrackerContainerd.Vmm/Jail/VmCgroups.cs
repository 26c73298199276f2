using System.Globalization;

namespace FirecrackerContainerd.Vmm.Jail;

/// <summary>
/// Makes, limits and removes the cgroup of one VM under a parent, in whichever hierarchy the host has: cgroup v1
/// (one directory per controller) or v2 (one unified directory). The jail launcher joins it by writing into the
/// <see cref="ProcsFiles"/> it is given.
/// </summary>
public abstract class VmCgroups
{
    /// <summary>The cgroup.procs files the VMM's process must be written into, one per hierarchy.</summary>
    public abstract IReadOnlyList<string> ProcsFiles(string path);

    /// <summary>The cgroup directories of <paramref name="path"/>, one per hierarchy.</summary>
    public abstract IReadOnlyList<string> Directories(string path);

    /// <summary>
    /// Makes the cgroup <paramref name="path"/> (relative, e.g. <c>firecracker-containerd/vm1</c>) with
    /// <paramref name="limits"/>. A cgroup left by a crashed shim is removed first; one that still holds processes is an error.
    /// </summary>
    public void Create(string path, CgroupLimits limits)
    {
        Remove(path);
        foreach (string directory in Directories(path))
        {
            Directory.CreateDirectory(directory);
        }

        Limit(path, limits);
        WeighAncestors(path);
    }

    /// <summary>How long <see cref="RemoveOnceDrained"/> waits for the kernel to stop counting a reaped process.</summary>
    public static readonly TimeSpan DrainWait = TimeSpan.FromSeconds(5);

    /// <summary>
    /// <see cref="Remove"/>, retried for up to <see cref="DrainWait"/>: a reaped process may still be counted for a moment
    /// while the kernel finishes its exit. The last failure is thrown.
    /// </summary>
    public void RemoveOnceDrained(string path)
    {
        DateTime deadline = DateTime.UtcNow + DrainWait;
        while (true)
        {
            try
            {
                Remove(path);
                return;
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }
        }
    }

    /// <summary>Removes the cgroup (rmdir, children first); a missing one is fine, one with live processes is an error naming them.</summary>
    public void Remove(string path)
    {
        bool removed = false;
        foreach (string directory in Directories(path))
        {
            if (!Directory.Exists(directory))
            {
                continue;
            }

            string procs = Path.Combine(directory, "cgroup.procs");
            string[] live = File.Exists(procs) ? File.ReadAllLines(procs).Where(line => line.Length > 0).ToArray() : [];
            if (live.Length > 0)
            {
                throw new IOException($"cgroup {directory} still holds processes {string.Join(' ', live)}: a VMM of that VM still runs");
            }

            RemoveDirectory(directory);
            removed = true;
        }

        if (removed)
        {
            WeighAncestors(path);
        }
    }

    /// <summary>
    /// Gives each ancestor of <paramref name="path"/> below the hierarchy's root the CPU weight of its children together
    /// (the default weight when it has none). A cgroup competes with its siblings as one entity: at the default weight,
    /// every VM under the parent together would weigh one task against the host's other tasks, where unjailed each of a
    /// VM's vCPU threads weighs one (docs/jail.md has the measurement).
    /// </summary>
    /// <remarks>
    /// Recomputed at every VM's start and end; two shims doing so at once may leave it one VM's weight off until the next.
    /// </remarks>
    internal void WeighAncestors(string path)
    {
        string? ancestor = Path.GetDirectoryName(path);
        while (!string.IsNullOrEmpty(ancestor))
        {
            WeighChildrenTogether(ancestor);
            ancestor = Path.GetDirectoryName(ancestor);
        }
    }

    /// <summary>Sets the CPU weight of cgroup <paramref name="path"/> to the sum of its children's, within the kernel's bounds; a hierarchy without CPU weights leaves it.</summary>
    protected virtual void WeighChildrenTogether(string path)
    {
    }

    /// <summary>The sum of <paramref name="file"/> in each child directory of <paramref name="directory"/> (a missing or unreadable one counts as <paramref name="unset"/>); null when it has no children.</summary>
    protected static long? SumOfChildren(string directory, string file, long unset)
    {
        if (!Directory.Exists(directory))
        {
            return null;
        }

        long sum = 0;
        bool any = false;
        foreach (string child in Directory.EnumerateDirectories(directory))
        {
            any = true;
            string value;
            try
            {
                value = File.ReadAllText(Path.Combine(child, file)).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                value = string.Empty;
            }

            sum += long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long weight) ? weight : unset;
        }

        return any ? sum : null;
    }

    /// <summary>Writes the limits into the cgroup's control files.</summary>
    protected abstract void Limit(string path, CgroupLimits limits);

    /// <summary>Removes one cgroup directory: rmdir on a cgroup file system (its control files go with it).</summary>
    protected virtual void RemoveDirectory(string directory) => Directory.Delete(directory);

    /// <summary>Writes <paramref name="value"/> into control file <paramref name="file"/>, naming it on failure.</summary>
    protected static void Write(string file, string value)
    {
        try
        {
            File.WriteAllText(file, value);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"write \"{value}\" to {file}: {e.Message}", e);
        }
    }

    /// <summary>A number as the kernel's control files take it.</summary>
    protected static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// The hierarchy this host uses, from its mount table: v2 when <c>/sys/fs/cgroup</c> itself is cgroup2 (or a
    /// cgroup2 mount has the memory controller), else v1 when the memory controller is mounted as a v1 hierarchy.
    /// </summary>
    public static VmCgroups Detect(string mounts = "/proc/self/mounts")
    {
        string? v1Memory = null;
        string? v2 = null;
        foreach (string line in File.ReadLines(mounts))
        {
            string[] fields = line.Split(' ');
            if (fields.Length < 4)
            {
                continue;
            }

            if (fields[2] == "cgroup2" && (fields[1] == "/sys/fs/cgroup" || HasMemoryController(fields[1])))
            {
                v2 ??= fields[1];
            }
            else if (fields[2] == "cgroup" && fields[3].Split(',').Contains("memory"))
            {
                v1Memory = fields[1];
            }
        }

        if (v2 is not null)
        {
            return new CgroupV2(v2);
        }

        return v1Memory is not null
            ? new CgroupV1(Path.GetDirectoryName(v1Memory) ?? "/sys/fs/cgroup")
            : throw new InvalidOperationException($"no cgroup hierarchy with the memory controller is mounted (read {mounts})");
    }

    private static bool HasMemoryController(string mountPoint)
    {
        string controllers = Path.Combine(mountPoint, "cgroup.controllers");
        return File.Exists(controllers) && File.ReadAllText(controllers).Split(' ', '\n').Contains("memory");
    }
}

/// <summary>cgroup v1: the memory, cpu and pids hierarchies, each a directory under <paramref name="root"/> (e.g. /sys/fs/cgroup/memory).</summary>
public sealed class CgroupV1(string root) : VmCgroups
{
    private static readonly string[] Controllers = ["memory", "cpu", "pids"];

    /// <inheritdoc/>
    public override IReadOnlyList<string> Directories(string path) => [.. Controllers.Select(c => Path.Combine(root, c, path))];

    /// <inheritdoc/>
    public override IReadOnlyList<string> ProcsFiles(string path) => [.. Directories(path).Select(d => Path.Combine(d, "cgroup.procs"))];

    /// <inheritdoc/>
    protected override void Limit(string path, CgroupLimits limits)
    {
        Write(Path.Combine(root, "memory", path, "memory.limit_in_bytes"), Number(limits.MemoryBytes));
        Write(Path.Combine(root, "cpu", path, "cpu.shares"), Number(limits.CpuShares));
        if (limits.CpuQuotaPercent > 0)
        {
            Write(Path.Combine(root, "cpu", path, "cpu.cfs_period_us"), Number(CgroupLimits.CpuPeriodMicroseconds));
            Write(Path.Combine(root, "cpu", path, "cpu.cfs_quota_us"), Number(limits.CpuQuotaMicroseconds));
        }

        if (limits.PidsMax > 0)
        {
            Write(Path.Combine(root, "pids", path, "pids.max"), Number(limits.PidsMax));
        }
    }

    /// <inheritdoc/>
    protected override void WeighChildrenTogether(string path)
    {
        // cpu.shares: 1024 by default, 2 to 262144 (kernel/sched/sched.h: MIN_SHARES, MAX_SHARES).
        string directory = Path.Combine(root, "cpu", path);
        if (Directory.Exists(directory))
        {
            long shares = SumOfChildren(directory, "cpu.shares", 1024) ?? 1024;
            Write(Path.Combine(directory, "cpu.shares"), Number(Math.Clamp(shares, 2, 262_144)));
        }
    }
}

/// <summary>cgroup v2: one unified hierarchy at <paramref name="root"/>; the parent's subtree_control hands the controllers down.</summary>
public sealed class CgroupV2(string root) : VmCgroups
{
    /// <inheritdoc/>
    public override IReadOnlyList<string> Directories(string path) => [Path.Combine(root, path)];

    /// <inheritdoc/>
    public override IReadOnlyList<string> ProcsFiles(string path) => [Path.Combine(root, path, "cgroup.procs")];

    /// <inheritdoc/>
    protected override void Limit(string path, CgroupLimits limits)
    {
        // Every level from the root down to the VM's parent must delegate the controllers to its children.
        string directory = root;
        foreach (string part in Path.GetDirectoryName(path)?.Split('/', StringSplitOptions.RemoveEmptyEntries) ?? [])
        {
            Write(Path.Combine(directory, "cgroup.subtree_control"), "+memory +cpu +pids");
            directory = Path.Combine(directory, part);
        }

        Write(Path.Combine(directory, "cgroup.subtree_control"), "+memory +cpu +pids");
        string cgroup = Path.Combine(root, path);
        Write(Path.Combine(cgroup, "memory.max"), Number(limits.MemoryBytes));
        Write(Path.Combine(cgroup, "cpu.weight"), Number(limits.CpuWeight));
        Write(Path.Combine(cgroup, "cpu.max"), limits.CpuQuotaPercent > 0
            ? $"{Number(limits.CpuQuotaMicroseconds)} {Number(CgroupLimits.CpuPeriodMicroseconds)}"
            : $"max {Number(CgroupLimits.CpuPeriodMicroseconds)}");
        Write(Path.Combine(cgroup, "pids.max"), limits.PidsMax > 0 ? Number(limits.PidsMax) : "max");
    }

    /// <inheritdoc/>
    protected override void WeighChildrenTogether(string path)
    {
        // cpu.weight: 100 by default, 1 to 10000.
        string directory = Path.Combine(root, path);
        if (Directory.Exists(directory))
        {
            long weight = SumOfChildren(directory, "cpu.weight", 100) ?? 100;
            Write(Path.Combine(directory, "cpu.weight"), Number(Math.Clamp(weight, 1, 10_000)));
        }
    }
}
