using FirecrackerContainerd.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Vmm.Selection;

/// <summary>The VMM drivers the runtime can use.</summary>
internal enum VmmKind
{
    /// <summary>Firecracker: production, needs its binary and a working KVM.</summary>
    Firecracker,

    /// <summary>QEMU: portable, runs under TCG where KVM does not work.</summary>
    Qemu,
}

/// <summary>Which VMM to use and why.</summary>
/// <param name="Kind">The chosen driver.</param>
/// <param name="Reason">A sentence naming what decided it (binary found or not, KVM verdict, configuration).</param>
internal sealed record VmmChoice(VmmKind Kind, string Reason);

/// <summary>Chooses Firecracker when it is configured or allowed, its binary exists and KVM works; otherwise QEMU.</summary>
internal sealed partial class VmmSelector
{
    /// <summary>Configuration value that lets the selector decide.</summary>
    public const string Auto = "auto";

    private readonly IKvmProbe _kvm;
    private readonly Func<string, string?> _findBinary;
    private readonly ILogger _logger;

    /// <summary>Creates a selector using <paramref name="kvm"/> and, for tests, a custom binary lookup.</summary>
    /// <param name="kvm">The KVM probe.</param>
    /// <param name="findBinary">Returns the path of a binary name or path, or null when missing; defaults to <see cref="ExecutableLookup.Find(string)"/>.</param>
    /// <param name="logger">Receives the choice and its reason.</param>
    public VmmSelector(IKvmProbe kvm, Func<string, string?>? findBinary = null, ILogger? logger = null)
    {
        _kvm = kvm;
        _findBinary = findBinary ?? ExecutableLookup.Find;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Selects the driver for configuration value <paramref name="configured"/> (<c>auto</c>, <c>firecracker</c> or <c>qemu</c>).</summary>
    /// <param name="configured">The runtime configuration's VMM setting.</param>
    /// <param name="firecrackerBinary">The Firecracker binary setting (name on PATH or path).</param>
    /// <param name="cancellationToken">Cancels the KVM probe.</param>
    public async Task<VmmChoice> SelectAsync(string configured, string firecrackerBinary, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(configured);
        var choice = await DecideAsync(configured, firecrackerBinary, cancellationToken).ConfigureAwait(false);
        LogChoice(_logger, choice.Kind, choice.Reason);
        return choice;
    }

    private async Task<VmmChoice> DecideAsync(string configured, string firecrackerBinary, CancellationToken cancellationToken)
    {
        switch (configured.ToLowerInvariant())
        {
            case "qemu":
                return new VmmChoice(VmmKind.Qemu, "the configuration asks for qemu");
            case "firecracker":
            case Auto:
                break;
            default:
                throw new ArgumentException($"unknown VMM \"{configured}\": use \"auto\", \"firecracker\" or \"qemu\"", nameof(configured));
        }

        var forced = configured.Equals("firecracker", StringComparison.OrdinalIgnoreCase);
        var binary = _findBinary(firecrackerBinary);
        if (binary is null)
        {
            return forced
                ? throw new InvalidOperationException($"the configuration asks for firecracker, but \"{firecrackerBinary}\" is not an executable on this host")
                : new VmmChoice(VmmKind.Qemu, $"firecracker binary \"{firecrackerBinary}\" not found");
        }

        var verdict = await _kvm.ProbeAsync(cancellationToken).ConfigureAwait(false);
        if (!verdict.Works)
        {
            return forced
                ? throw new InvalidOperationException($"the configuration asks for firecracker ({binary}), but KVM does not work: {verdict.Reason}")
                : new VmmChoice(VmmKind.Qemu, $"firecracker found at {binary}, but KVM does not work: {verdict.Reason}");
        }

        return new VmmChoice(VmmKind.Firecracker, $"firecracker found at {binary} and KVM works: {verdict.Reason}");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "VMM driver {Kind} selected: {Reason}")]
    private static partial void LogChoice(ILogger logger, VmmKind kind, string reason);
}
