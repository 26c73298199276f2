using System.Collections.Immutable;

namespace FirecrackerContainerd.Vmm.Launch;

/// <summary>How to start one VMM process: the program, its arguments and the directory it runs in.</summary>
/// <param name="FileName">The program (a path, or a name looked up on PATH).</param>
/// <param name="Arguments">Its arguments, passed as an argv array (no shell).</param>
/// <param name="WorkingDirectory">Its working directory; relative socket paths are resolved from here.</param>
/// <param name="SetprivPath">
/// util-linux <c>setpriv</c>, used to set PR_SET_PDEATHSIG=SIGKILL in the child before it execs the VMM,
/// so the VMM dies with us; null starts the VMM directly (it may then outlive a crashed parent).
/// </param>
/// <param name="NetworkNamespace">
/// A network namespace file (e.g. <c>/var/run/netns/cni-...</c>) the VMM runs in, where its TAP devices are; null
/// for the caller's own.
/// </param>
/// <param name="NewPidNamespace">
/// Start the program as pid 1 of a new pid namespace (the jail launcher's case): only the starting thread's children
/// enter it, so the rest of this process is untouched.
/// </param>
/// <param name="HoldStandardInput">
/// Keep the program's standard input an open pipe whose only write end this process holds until the process is disposed,
/// instead of closing it at once: the program can then tell, by POLLHUP on it, that this process has died (fc-jail's
/// <c>--parent-fd 0</c> check, which closes the window before its parent-death signal is set).
/// </param>
public sealed record VmmLaunch(
    string FileName,
    ImmutableArray<string> Arguments,
    string WorkingDirectory,
    string? SetprivPath = VmmLaunch.DefaultSetprivPath,
    string? NetworkNamespace = null,
    bool NewPidNamespace = false,
    bool HoldStandardInput = false)
{
    /// <summary>Where Debian's util-linux installs setpriv.</summary>
    public const string DefaultSetprivPath = "/usr/bin/setpriv";

    /// <summary>The argv actually executed: setpriv's prefix, then the VMM and its arguments.</summary>
    public ImmutableArray<string> CommandLine() =>
        SetprivPath is null
            ? [FileName, .. Arguments]
            : [SetprivPath, "--pdeathsig", "KILL", "--", FileName, .. Arguments];
}
