using System.Globalization;
using FirecrackerContainerd.Protos.Cgroups.V2;

namespace FirecrackerContainerd.Agent.Cgroups;

/// <summary>
/// Reads a cgroup v2 directory into containerd's cgroup v2 <see cref="Metrics"/>. Every file is
/// optional (a controller that is not enabled has none: its numbers stay zero) and every line that
/// does not parse is skipped.
/// </summary>
internal static class CgroupMetrics
{
    /// <summary>The value containerd reports for a limit that reads "max".</summary>
    public const ulong Unlimited = ulong.MaxValue;

    /// <summary>One sample of the cgroup at <paramref name="directory"/>.</summary>
    public static Metrics Read(string directory)
    {
        string File(string name) => CgroupLocator.ReadOrEmpty(Path.Join(directory, name));

        var metrics = new Metrics
        {
            Pids = new PidsStat { Current = ParseSingle(File("pids.current")), Limit = ParseSingle(File("pids.max")) },
            Cpu = ParseCpu(File("cpu.stat")),
            Memory = ParseMemory(File("memory.stat")),
            Io = ParseIo(File("io.stat")),
        };
        metrics.Memory.Usage = ParseSingle(File("memory.current"));
        metrics.Memory.UsageLimit = ParseSingle(File("memory.max"));
        return metrics;
    }

    /// <summary>A file holding one number or "max"; zero when empty or garbage.</summary>
    public static ulong ParseSingle(string text)
    {
        string value = text.Trim();
        return value == "max" ? Unlimited : ParseNumber(value) ?? 0;
    }

    /// <summary>cpu.stat: "key value" lines.</summary>
    public static CPUStat ParseCpu(string text)
    {
        var cpu = new CPUStat();
        foreach (var (key, value) in KeyValues(text))
        {
            switch (key)
            {
                case "usage_usec": cpu.UsageUsec = value; break;
                case "user_usec": cpu.UserUsec = value; break;
                case "system_usec": cpu.SystemUsec = value; break;
                case "nr_periods": cpu.NrPeriods = value; break;
                case "nr_throttled": cpu.NrThrottled = value; break;
                case "throttled_usec": cpu.ThrottledUsec = value; break;
                default: break;
            }
        }

        return cpu;
    }

    /// <summary>memory.stat: "key value" lines; keys this message has no field for are ignored.</summary>
    public static MemoryStat ParseMemory(string text)
    {
        var memory = new MemoryStat();
        foreach (var (key, value) in KeyValues(text))
        {
            switch (key)
            {
                case "anon": memory.Anon = value; break;
                case "file": memory.File = value; break;
                case "kernel_stack": memory.KernelStack = value; break;
                case "slab": memory.Slab = value; break;
                case "sock": memory.Sock = value; break;
                case "shmem": memory.Shmem = value; break;
                case "file_mapped": memory.FileMapped = value; break;
                case "file_dirty": memory.FileDirty = value; break;
                case "file_writeback": memory.FileWriteback = value; break;
                case "anon_thp": memory.AnonThp = value; break;
                case "inactive_anon": memory.InactiveAnon = value; break;
                case "active_anon": memory.ActiveAnon = value; break;
                case "inactive_file": memory.InactiveFile = value; break;
                case "active_file": memory.ActiveFile = value; break;
                case "unevictable": memory.Unevictable = value; break;
                case "slab_reclaimable": memory.SlabReclaimable = value; break;
                case "slab_unreclaimable": memory.SlabUnreclaimable = value; break;
                case "pgfault": memory.Pgfault = value; break;
                case "pgmajfault": memory.Pgmajfault = value; break;
                default: break;
            }
        }

        return memory;
    }

    /// <summary>io.stat: "major:minor key=value ..." lines, one per device.</summary>
    public static IOStat ParseIo(string text)
    {
        var io = new IOStat();
        foreach (string line in text.Split('\n'))
        {
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 0)
            {
                continue;
            }

            string[] device = fields[0].Split(':');
            if (device.Length != 2 || ParseNumber(device[0]) is not { } major || ParseNumber(device[1]) is not { } minor)
            {
                continue;
            }

            var entry = new IOEntry { Major = major, Minor = minor };
            foreach (string field in fields.Skip(1))
            {
                int equals = field.IndexOf('=', StringComparison.Ordinal);
                if (equals <= 0 || ParseNumber(field[(equals + 1)..]) is not { } value)
                {
                    continue;
                }

                switch (field[..equals])
                {
                    case "rbytes": entry.Rbytes = value; break;
                    case "wbytes": entry.Wbytes = value; break;
                    case "rios": entry.Rios = value; break;
                    case "wios": entry.Wios = value; break;
                    default: break;
                }
            }

            io.Usage.Add(entry);
        }

        return io;
    }

    private static IEnumerable<(string Key, ulong Value)> KeyValues(string text)
    {
        foreach (string line in text.Split('\n'))
        {
            string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 2 && ParseNumber(fields[1]) is { } value)
            {
                yield return (fields[0], value);
            }
        }
    }

    private static ulong? ParseNumber(string text) =>
        ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value) ? value : null;
}
