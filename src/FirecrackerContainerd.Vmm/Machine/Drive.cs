namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>A block device backed by a host file; stub drives are later patched to a container image.</summary>
/// <param name="DriveId">Identifier of the drive (letters, digits and '_': Firecracker uses it in URL paths).</param>
/// <param name="HostPath">Host path of the backing file.</param>
/// <param name="IsRoot">Whether the guest mounts this drive as its root file system.</param>
/// <param name="IsReadOnly">Whether the guest sees the drive read-only.</param>
/// <param name="PartUuid">Partition UUID of the root partition; only meaningful for the root drive.</param>
/// <param name="CacheType">How the VMM caches writes to the backing file.</param>
/// <param name="RateLimiter">Optional IO rate limiter.</param>
public sealed record Drive(
    string DriveId,
    string HostPath,
    bool IsRoot = false,
    bool IsReadOnly = false,
    string? PartUuid = null,
    DriveCacheType CacheType = DriveCacheType.Unsafe,
    RateLimiter? RateLimiter = null);

/// <summary>The write caching strategy of a drive.</summary>
public enum DriveCacheType
{
    /// <summary>Flush requests from the guest are ignored (fastest; Firecracker's default).</summary>
    Unsafe,

    /// <summary>Flush requests from the guest reach the host file (fsync).</summary>
    Writeback,
}
