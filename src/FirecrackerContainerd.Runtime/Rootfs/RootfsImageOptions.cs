namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>How rootfs images are built.</summary>
/// <param name="MkfsBinary">mkfs.ext4 from e2fsprogs, by path or name on PATH.</param>
/// <param name="WorkDirectory">Where the private mount point directory is made; the system temp directory when null.</param>
/// <param name="FreeBytes">Room left for the container to write, beyond the tree and the file system's own metadata.</param>
/// <param name="ExtraInodes">Inodes left for files the container creates.</param>
public sealed record RootfsImageOptions(
    string MkfsBinary = "mkfs.ext4",
    string? WorkDirectory = null,
    long FreeBytes = 64L << 20,
    long ExtraInodes = 16384)
{
    /// <summary>The defaults.</summary>
    public static RootfsImageOptions Default { get; } = new();
}
