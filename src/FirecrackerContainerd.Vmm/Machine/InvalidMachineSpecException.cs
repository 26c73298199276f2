namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>Thrown when a <see cref="MachineSpec"/> breaks a rule; lists every broken rule, not just the first.</summary>
public sealed class InvalidMachineSpecException : ArgumentException
{
    /// <summary>Creates the exception for machine <paramref name="vmId"/> with its list of problems.</summary>
    public InvalidMachineSpecException(string vmId, IReadOnlyList<string> problems)
        : base($"invalid machine spec for vm \"{vmId}\": {string.Join("; ", problems)}")
    {
        VmId = vmId;
        Problems = problems;
    }

    /// <summary>The machine whose spec is invalid.</summary>
    public string VmId { get; }

    /// <summary>Each broken rule as one sentence.</summary>
    public IReadOnlyList<string> Problems { get; }
}
