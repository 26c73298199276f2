using System.Text.Json;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.FcControl;

namespace FirecrackerContainerd.Control.Service;

/// <summary>
/// Checks of what a shim answers before it is passed on: a shim runs next to a guest and can misbehave, and the
/// daemon's clients must get only answers that describe the VM they asked about.
/// </summary>
public static class ShimAnswerValidation
{
    /// <summary>Longest path a shim may report (PATH_MAX).</summary>
    public const int MaxPathLength = 4096;

    /// <summary>Largest metadata document passed on (Firecracker's MMDS holds at most 51200 bytes by default; this leaves room).</summary>
    public const int MaxMetadataLength = 1024 * 1024;

    /// <summary>Checks a CreateVM answer for <paramref name="vmId"/>.</summary>
    /// <exception cref="InvalidDataException">The answer is not acceptable; the message says why.</exception>
    public static void Check(CreateVMResponse answer, string vmId)
    {
        ArgumentNullException.ThrowIfNull(answer);
        CheckVmId(answer.VMID, vmId);
        CheckPaths(("SocketPath", answer.SocketPath), ("LogFifoPath", answer.LogFifoPath),
            ("MetricsFifoPath", answer.MetricsFifoPath), ("CgroupPath", answer.CgroupPath));
    }

    /// <summary>Checks a GetVMInfo answer for <paramref name="vmId"/>.</summary>
    /// <exception cref="InvalidDataException">The answer is not acceptable.</exception>
    public static void Check(GetVMInfoResponse answer, string vmId)
    {
        ArgumentNullException.ThrowIfNull(answer);
        CheckVmId(answer.VMID, vmId);
        CheckPaths(("SocketPath", answer.SocketPath), ("LogFifoPath", answer.LogFifoPath),
            ("MetricsFifoPath", answer.MetricsFifoPath), ("CgroupPath", answer.CgroupPath), ("VSockPath", answer.VSockPath));
        if (answer.State is not ("" or "NotStarted" or "Running" or "Paused"))
        {
            throw new InvalidDataException($"the shim reported vm {vmId} in an unknown state \"{Clip(answer.State)}\"");
        }
    }

    /// <summary>Checks a GetVMMetadata answer: a JSON document of bounded size (empty means none).</summary>
    /// <exception cref="InvalidDataException">The answer is not acceptable.</exception>
    public static void Check(GetVMMetadataResponse answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        if (answer.Metadata.Length == 0)
        {
            return;
        }

        if (answer.Metadata.Length > MaxMetadataLength)
        {
            throw new InvalidDataException($"metadata of {answer.Metadata.Length} characters exceeds {MaxMetadataLength}");
        }

        CheckJson(answer.Metadata, "metadata");
    }

    /// <summary>Checks balloon statistics: every figure is a count or a size, never negative.</summary>
    /// <exception cref="InvalidDataException">The answer is not acceptable.</exception>
    public static void Check(GetBalloonStatsResponse answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        long[] figures = [answer.ActualMib, answer.ActualPages, answer.AvailableMemory, answer.DiskCaches, answer.FreeMemory,
            answer.HugetlbAllocations, answer.HugetlbFailures, answer.MajorFaults, answer.MinorFaults, answer.SwapIn,
            answer.SwapOut, answer.TargetMib, answer.TargetPages, answer.TotalMemory];
        if (figures.Any(f => f < 0))
        {
            throw new InvalidDataException("balloon statistics hold a negative figure");
        }
    }

    /// <summary>Throws unless <paramref name="json"/> parses as one JSON document.</summary>
    /// <exception cref="InvalidDataException">Not JSON.</exception>
    public static void CheckJson(string json, string what)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{what} is not valid JSON: {e.Message}", e);
        }
    }

    private static void CheckVmId(string answered, string vmId)
    {
        if (!string.Equals(answered, vmId, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"the answer names vm \"{Clip(answered)}\"");
        }
    }

    private static void CheckPaths(params (string Field, string Value)[] paths)
    {
        foreach (var (field, value) in paths)
        {
            if (value.Length == 0)
            {
                continue;
            }

            if (value.Length > MaxPathLength || value.Contains('\0', StringComparison.Ordinal) || !Path.IsPathRooted(value))
            {
                throw new InvalidDataException($"{field} \"{Clip(value)}\" is not an absolute path");
            }
        }
    }

    private static string Clip(string text) => UntrustedText.Shown(text, 100);
}
