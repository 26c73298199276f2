namespace FirecrackerContainerd.Vmm.Selection;

/// <summary>Answers whether this host has a KVM that can run guests; injectable so selection can be tested and cached.</summary>
internal interface IKvmProbe
{
    /// <summary>Returns the verdict with a sentence explaining it.</summary>
    Task<KvmVerdict> ProbeAsync(CancellationToken cancellationToken);
}

/// <summary>The outcome of a KVM probe.</summary>
/// <param name="Works">Whether guests can run under KVM.</param>
/// <param name="Reason">Why, in one sentence.</param>
internal sealed record KvmVerdict(bool Works, string Reason);
