using System.Globalization;

namespace FirecrackerContainerd.Jail;

/// <summary>What one jail is made of, as fc-jail's command line names it (the shim's VMM layer writes that line).</summary>
/// <param name="Root">The chroot directory; a tmpfs is mounted on it inside the jail's own mount namespace.</param>
/// <param name="Uid">The unprivileged user the program runs as.</param>
/// <param name="Gid">Its group.</param>
/// <param name="Hostname">The jail's host name (its own UTS namespace).</param>
/// <param name="ReadOnly">Host paths bound read-only at the same path inside.</param>
/// <param name="ReadWrite">Host paths bound read-write at the same path inside.</param>
/// <param name="Devices">Host device nodes made again at the same path inside, owned by <paramref name="Uid"/> (e.g. /dev/null, /dev/net/tun).</param>
/// <param name="CgroupProcs">cgroup.procs files the jail joins before it drops its privileges.</param>
/// <param name="Taps">TAP devices (in the network namespace the jail starts in) whose owner becomes <paramref name="Uid"/>.</param>
/// <param name="WorkingDirectory">The directory the program starts in, a path inside the jail.</param>
/// <param name="ParentFd">
/// The read end of a pipe whose write end only the starting process holds (see <see cref="ParentWatch"/>); null when
/// the starter gives none. It becomes /dev/null before the exec.
/// </param>
/// <param name="Program">The program, by absolute path inside the jail.</param>
/// <param name="ProgramArguments">Its arguments, unchanged.</param>
internal sealed record JailArguments(
    string Root,
    uint Uid,
    uint Gid,
    string Hostname,
    IReadOnlyList<string> ReadOnly,
    IReadOnlyList<string> ReadWrite,
    IReadOnlyList<string> Devices,
    IReadOnlyList<string> CgroupProcs,
    IReadOnlyList<string> Taps,
    string WorkingDirectory,
    int? ParentFd,
    string Program,
    IReadOnlyList<string> ProgramArguments)
{
    public const string Usage =
        "usage: fc-jail --root DIR --uid N --gid N [--hostname NAME] [--ro PATH]... [--rw PATH]... [--dev PATH]... " +
        "[--cgroup-procs FILE]... [--tap NAME]... [--chdir DIR] [--parent-fd N] -- PROGRAM [ARG]...";

    /// <summary>Parses <paramref name="args"/>; throws <see cref="ArgumentException"/> naming the bad argument.</summary>
    public static JailArguments Parse(IReadOnlyList<string> args)
    {
        string? root = null, hostname = null, chdir = null;
        uint? uid = null, gid = null;
        int? parentFd = null;
        List<string> readOnly = [], readWrite = [], devices = [], cgroups = [], taps = [];
        int i = 0;
        for (; i < args.Count && args[i] != "--"; i++)
        {
            string option = args[i];
            string value = i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{option} needs a value");
            switch (option)
            {
                case "--root": root = Absolute(option, value); break;
                case "--uid": uid = Id(option, value); break;
                case "--gid": gid = Id(option, value); break;
                case "--hostname": hostname = value; break;
                case "--ro": readOnly.Add(Absolute(option, value)); break;
                case "--rw": readWrite.Add(Absolute(option, value)); break;
                case "--dev": devices.Add(Absolute(option, value)); break;
                case "--cgroup-procs": cgroups.Add(Absolute(option, value)); break;
                case "--tap": taps.Add(value); break;
                case "--chdir": chdir = Absolute(option, value); break;
                case "--parent-fd": parentFd = Descriptor(option, value); break;
                default: throw new ArgumentException($"unknown option {option}");
            }
        }

        if (i + 1 >= args.Count)
        {
            throw new ArgumentException("no program after --");
        }

        if (root is null || uid is null || gid is null)
        {
            throw new ArgumentException("--root, --uid and --gid are required");
        }

        string program = Absolute("the program", args[i + 1]);
        return new JailArguments(
            root, uid.Value, gid.Value, hostname ?? "fc-jail", readOnly, readWrite, devices, cgroups, taps, chdir ?? "/", parentFd, program,
            [.. args.Skip(i + 2)]);
    }

    // Root keeps its privileges until the exec; a jailed program running as root would be no jail at all.
    private static uint Id(string option, string value) =>
        uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out uint id) && id != 0
            ? id
            : throw new ArgumentException($"{option} {value} is not a non-zero user or group id");

    private static int Descriptor(string option, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int fd)
            ? fd
            : throw new ArgumentException($"{option} {value} is not a file descriptor number");

    private static string Absolute(string option, string value) =>
        value.StartsWith('/') && !value.Split('/').Contains("..")
            ? value
            : throw new ArgumentException($"{option} {value} is not an absolute path without ..");
}
