namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>The tests every rootfs parser makes of a path containerd hands over; each parser words its own refusal.</summary>
internal static class RootfsPath
{
    /// <summary>Whether <paramref name="path"/> has a <c>.</c> or <c>..</c> component.</summary>
    public static bool HasDotSegment(string path) => path.Split('/').Any(part => part is "." or "..");

    /// <summary>Whether <paramref name="path"/> names an existing regular file itself, not through a symbolic link.</summary>
    public static bool IsRegularFile(string path)
    {
        var file = new FileInfo(path);
        return file.Exists && file.LinkTarget is null;
    }
}
