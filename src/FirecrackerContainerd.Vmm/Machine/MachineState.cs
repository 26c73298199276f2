namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>The run state of a machine as its VMM reports it.</summary>
public enum MachineState
{
    /// <summary>Configured (or being configured) but not booted.</summary>
    NotStarted,

    /// <summary>vCPUs are running.</summary>
    Running,

    /// <summary>vCPUs are stopped; state can be snapshotted.</summary>
    Paused,
}
