namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>How and when a VMM process ended.</summary>
/// <param name="VmId">The machine whose VMM ended.</param>
/// <param name="Pid">Process id the VMM had.</param>
/// <param name="ExitCode">Exit status; 128 + n when it died from signal n.</param>
/// <param name="Killed">Whether we sent SIGKILL because it did not stop in time.</param>
/// <param name="ExitedAt">When the exit was observed.</param>
public sealed record VmExit(string VmId, int Pid, int ExitCode, bool Killed, DateTimeOffset ExitedAt)
{
    /// <summary>True when the VMM ended by itself with status 0 (a guest reboot or a handled Ctrl-Alt-Del).</summary>
    public bool IsClean => !Killed && ExitCode == 0;
}
