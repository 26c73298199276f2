using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Runtime.Pods;

/// <summary>What a task is to containerd's CRI plugin: a pod's sandbox (its pause container) or one of its containers.</summary>
internal enum CriTaskKind
{
    /// <summary>The pod's sandbox: its Create boots the pod's VM.</summary>
    Sandbox,

    /// <summary>A container of the pod: it runs in the sandbox's VM.</summary>
    Container,
}

/// <summary>
/// A task as containerd's CRI plugin made it, read from the annotations it puts on the OCI spec: which pod it belongs
/// to, whether it is that pod's sandbox, and the pod's resources as the kubelet sized them (on the sandbox only).
/// </summary>
/// <param name="Kind">Sandbox or container.</param>
/// <param name="SandboxId">The pod's sandbox id: the id of the pod's VM.</param>
/// <param name="CpuQuota">The pod's CPU quota in microseconds per <paramref name="CpuPeriod"/>, when the kubelet gave one.</param>
/// <param name="CpuPeriod">The period of <paramref name="CpuQuota"/>.</param>
/// <param name="MemoryBytes">The pod's memory limit in bytes, when the kubelet gave one.</param>
internal sealed record CriTask(CriTaskKind Kind, string SandboxId, long? CpuQuota, long? CpuPeriod, long? MemoryBytes)
{
    /// <summary>"sandbox" or "container".</summary>
    public const string ContainerTypeAnnotation = "io.kubernetes.cri.container-type";

    /// <summary>The pod's sandbox id, on the sandbox and on each container.</summary>
    public const string SandboxIdAnnotation = "io.kubernetes.cri.sandbox-id";

    /// <summary>The pod's CPU quota (µs per period) for the sandbox, from the kubelet's pod resources.</summary>
    public const string CpuQuotaAnnotation = "io.kubernetes.cri.sandbox-cpu-quota";

    /// <summary>The period of the CPU quota (µs).</summary>
    public const string CpuPeriodAnnotation = "io.kubernetes.cri.sandbox-cpu-period";

    /// <summary>The pod's memory limit in bytes.</summary>
    public const string MemoryAnnotation = "io.kubernetes.cri.sandbox-memory";

    /// <summary>The task <paramref name="spec"/> describes, or null when it does not come from the CRI plugin.</summary>
    /// <exception cref="InvalidDataException">A CRI annotation is malformed; the message names it.</exception>
    public static CriTask? Of(JsonObject spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec["annotations"] is not JsonObject annotations || Text(annotations, ContainerTypeAnnotation) is not { } type)
        {
            return null;
        }

        CriTaskKind kind = type switch
        {
            "sandbox" => CriTaskKind.Sandbox,
            "container" => CriTaskKind.Container,
            _ => throw new InvalidDataException($"annotation {ContainerTypeAnnotation} is \"{UntrustedText.Shown(type, 32)}\", neither sandbox nor container"),
        };
        string sandboxId = Text(annotations, SandboxIdAnnotation)
            ?? throw new InvalidDataException($"a CRI {type} has no {SandboxIdAnnotation} annotation");
        try
        {
            Identifiers.Validate(sandboxId);
        }
        catch (InvalidIdentifierException e)
        {
            throw new InvalidDataException($"annotation {SandboxIdAnnotation}: {e.Message}", e);
        }

        if (annotations.ContainsKey(WellKnownNames.VmIdAnnotation))
        {
            // Silently running the task elsewhere than its annotation says would hide a mistake: one pod, one VM.
            throw new InvalidDataException($"annotation {WellKnownNames.VmIdAnnotation} cannot choose the VM of a Kubernetes pod's {type}: the pod's VM is its sandbox's ({sandboxId})");
        }

        return kind == CriTaskKind.Container
            ? new CriTask(kind, sandboxId, null, null, null)
            : new CriTask(kind, sandboxId, Number(annotations, CpuQuotaAnnotation), Number(annotations, CpuPeriodAnnotation), Number(annotations, MemoryAnnotation));
    }

    /// <summary>The vCPUs the pod's CPU quota asks for (rounded up), or null when it asks for none.</summary>
    public int? Vcpus => CpuQuota is > 0 && CpuPeriod is > 0 ? (int)Math.Min(int.MaxValue, (CpuQuota.Value + CpuPeriod.Value - 1) / CpuPeriod.Value) : null;

    private static string? Text(JsonObject annotations, string key) => annotations[key] switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        _ => throw new InvalidDataException($"annotation {key} is not a string"),
    };

    // The kubelet writes "0" (or leaves the annotation out) for "not limited"; a negative quota means the same.
    private static long? Number(JsonObject annotations, string key)
    {
        if (Text(annotations, key) is not { } text)
        {
            return null;
        }

        return long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value)
            ? (value > 0 ? value : null)
            : throw new InvalidDataException($"annotation {key} is \"{UntrustedText.Shown(text, 32)}\", not a number");
    }
}
