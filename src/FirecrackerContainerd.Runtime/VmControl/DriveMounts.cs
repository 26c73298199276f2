using System.Collections.Immutable;
using System.Text.RegularExpressions;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Vmm.Machine;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>
/// Checks CreateVM's DriveMounts and turns them into the drives the VM boots with and the agent mounts. Every
/// problem names the field and the mount's index; all of them are reported at once.
/// </summary>
public static partial class DriveMounts
{
    /// <summary>At most this many drive mounts per VM (each is a virtio-blk device besides the container slots).</summary>
    public const int MaxDriveMounts = 8;

    /// <summary>At most this many mount options per drive mount.</summary>
    public const int MaxOptions = 32;

    private const int MaxPathLength = 4096;
    private const int MaxOptionLength = 256;
    private const int RegularFile = 0x8000;
    private const int BlockDevice = 0x6000;

    /// <summary>
    /// Guest trees a drive mount must not cover: the agent's bundles (/container), the metadata it serves to
    /// containers, the OCI runtime's state, and the kernel's own file systems.
    /// </summary>
    public static readonly ImmutableArray<string> ReservedVmPaths =
        [WellKnownNames.VmBundleRoot, WellKnownNames.GuestMetadataDirectory, WellKnownNames.GuestAgentStateDirectory, "/proc", "/sys", "/dev"];

    /// <summary>
    /// Validates <paramref name="mounts"/> of CreateVM for VM <paramref name="vmId"/>, whose VMM setting is
    /// <paramref name="vmm"/>. Throws a <see cref="TtrpcException"/>: InvalidArgument listing every problem, or
    /// Unimplemented for a rate limiter, which only the Firecracker driver has.
    /// </summary>
    public static ImmutableArray<VmDriveMount> Validate(string vmId, IReadOnlyList<FirecrackerDriveMount> mounts, string vmm)
    {
        ArgumentNullException.ThrowIfNull(mounts);
        var problems = new List<string>();
        if (mounts.Count > MaxDriveMounts)
        {
            problems.Add($"DriveMounts holds {mounts.Count} mounts, more than {MaxDriveMounts}");
        }

        var result = ImmutableArray.CreateBuilder<VmDriveMount>(mounts.Count);
        var vmPaths = new HashSet<string>(StringComparer.Ordinal);
        bool rateLimited = false;
        bool blockDevice = false;
        for (int i = 0; i < mounts.Count; i++)
        {
            FirecrackerDriveMount mount = mounts[i];
            string field = $"DriveMounts[{i}]";
            blockDevice |= CheckHostPath(field, mount.HostPath, problems);
            if (CheckVmPath(field, mount.VMPath, problems) && !vmPaths.Add(mount.VMPath))
            {
                problems.Add($"{field}.VMPath \"{mount.VMPath}\" is used by an earlier drive mount");
            }

            if (!FilesystemTypePattern().IsMatch(mount.FilesystemType))
            {
                problems.Add($"{field}.FilesystemType \"{Printable(mount.FilesystemType)}\" must be a file system name of 1..32 of a-z and 0-9 (e.g. ext4)");
            }

            ImmutableArray<string> options = Options(field, mount, problems);
            DriveCacheType cache = DriveCacheType.Unsafe;
            switch (mount.CacheType)
            {
                case "" or "Unsafe":
                    break;
                case "Writeback":
                    cache = DriveCacheType.Writeback;
                    break;
                default:
                    problems.Add($"{field}.CacheType \"{Printable(mount.CacheType)}\" must be empty, \"Unsafe\" or \"Writeback\"");
                    break;
            }

            RateLimiter? limiter = null;
            if (mount.RateLimiter is { } requested)
            {
                rateLimited = true;
                limiter = RateLimiterOf(field, requested, problems);
            }

            result.Add(new VmDriveMount(VmDriveMount.DriveIdOf(i), mount.HostPath, mount.VMPath, mount.FilesystemType, options, mount.IsWritable, cache, limiter));
        }

        if (problems.Count > 0)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"create vm \"{vmId}\": {string.Join("; ", problems)}");
        }

        // "auto" may pick QEMU, which has no block IO throttling that matches Firecracker's token buckets, and whose
        // drive patch ("file" driver, sized from the file's length) takes regular files only.
        bool firecracker = string.Equals(vmm, "firecracker", StringComparison.Ordinal);
        if (rateLimited && !firecracker)
        {
            throw new TtrpcException(StatusCode.Unimplemented,
                $"create vm \"{vmId}\": DriveMounts[].RateLimiter needs the Firecracker driver (vmm \"firecracker\"); the QEMU driver has no drive rate limiter");
        }

        if (blockDevice && !firecracker)
        {
            throw new TtrpcException(StatusCode.Unimplemented,
                $"create vm \"{vmId}\": a DriveMounts[].HostPath that is a block device needs the Firecracker driver (vmm \"firecracker\"); the QEMU driver attaches regular files only");
        }

        return result.MoveToImmutable();
    }

    // True when the path is a block device.
    private static bool CheckHostPath(string field, string path, List<string> problems)
    {
        if (path.Length == 0 || path.Length > MaxPathLength || !Path.IsPathFullyQualified(path) || path.Any(char.IsControl))
        {
            problems.Add($"{field}.HostPath \"{Printable(path)}\" must be an absolute path without control characters");
            return false;
        }

        int type;
        try
        {
            type = Interop.FileType(path);
        }
        catch (IOException e)
        {
            problems.Add($"{field}.HostPath: {e.Message}");
            return false;
        }

        if (type is not (RegularFile or BlockDevice))
        {
            problems.Add($"{field}.HostPath \"{path}\" is neither a regular file nor a block device");
        }

        return type == BlockDevice;
    }

    // Normalised: "/" then segments that are neither empty, "." nor "..", so the guest path is what it reads.
    private static bool CheckVmPath(string field, string path, List<string> problems)
    {
        string shown = Printable(path);
        if (path.Length is 0 or > MaxPathLength || path[0] != '/' || path.Any(char.IsControl))
        {
            problems.Add($"{field}.VMPath \"{shown}\" must be an absolute path without control characters");
            return false;
        }

        if (path == "/")
        {
            problems.Add($"{field}.VMPath must not be \"/\" (the guest's root holds the agent)");
            return false;
        }

        if (path[1..].Split('/').Any(segment => segment is "" or "." or ".."))
        {
            problems.Add($"{field}.VMPath \"{shown}\" must be normalised: no \"..\", \".\", \"//\" or trailing \"/\"");
            return false;
        }

        if (ReservedVmPaths.FirstOrDefault(reserved => path == reserved || path.StartsWith(reserved + "/", StringComparison.Ordinal)) is { } taken)
        {
            problems.Add($"{field}.VMPath \"{shown}\" lies in {taken}, which the guest agent owns");
            return false;
        }

        return true;
    }

    // A read-only drive is also mounted "ro": its "rw" is dropped, "ro" added once.
    private static ImmutableArray<string> Options(string field, FirecrackerDriveMount mount, List<string> problems)
    {
        if (mount.Options.Count > MaxOptions)
        {
            problems.Add($"{field}.Options holds {mount.Options.Count} options, more than {MaxOptions}");
        }

        for (int j = 0; j < mount.Options.Count; j++)
        {
            string option = mount.Options[j];
            if (option.Length is 0 or > MaxOptionLength || option.Contains(',', StringComparison.Ordinal) || option.Any(char.IsControl))
            {
                problems.Add($"{field}.Options[{j}] \"{Printable(option)}\" must be one option of 1..{MaxOptionLength} characters, without ',' or control characters");
            }
        }

        return mount.IsWritable
            ? [.. mount.Options]
            : [.. mount.Options.Where(o => o is not ("rw" or "ro")), "ro"];
    }

    private static RateLimiter RateLimiterOf(string field, FirecrackerRateLimiter limiter, List<string> problems)
    {
        TokenBucket? Bucket(string name, FirecrackerTokenBucket? bucket)
        {
            if (bucket is null)
            {
                return null;
            }

            if (bucket.Capacity < 0 || bucket.RefillTime < 0 || bucket.OneTimeBurst < 0)
            {
                problems.Add($"{field}.RateLimiter.{name} must not hold negative values");
            }

            return new TokenBucket(bucket.Capacity, bucket.RefillTime, bucket.OneTimeBurst == 0 ? null : bucket.OneTimeBurst);
        }

        return new RateLimiter(Bucket("Bandwidth", limiter.Bandwidth), Bucket("Ops", limiter.Ops));
    }

    [GeneratedRegex("^[a-z0-9]{1,32}\\z")]
    private static partial Regex FilesystemTypePattern();

    private static string Printable(string text) => UntrustedText.Shown(text, 128);
}
