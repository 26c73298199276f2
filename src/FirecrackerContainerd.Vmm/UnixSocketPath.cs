using System.Text;

namespace FirecrackerContainerd.Vmm;

/// <summary>Chooses a path to connect to a Unix socket that fits in <c>sockaddr_un</c> (108 bytes with the NUL).</summary>
/// <remarks>
/// VM directories can be deep, so the VMM binds its sockets relative to the VM directory. A client
/// in another working directory uses the absolute path when it fits, else a path relative to its
/// own working directory when that fits, else it fails with both paths in the message.
/// </remarks>
public static class UnixSocketPath
{
    /// <summary>The longest path sockaddr_un.sun_path holds (108 bytes including the terminating NUL).</summary>
    public const int MaxPathBytes = 107;

    /// <summary>Returns a path to <paramref name="absolutePath"/> short enough for connect(2).</summary>
    public static string ForConnect(string absolutePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(absolutePath);
        if (Fits(absolutePath))
        {
            return absolutePath;
        }

        var relative = Path.GetRelativePath(Environment.CurrentDirectory, absolutePath);
        if (Fits(relative))
        {
            return relative;
        }

        throw new PathTooLongException(
            $"unix socket \"{absolutePath}\" is longer than {MaxPathBytes} bytes, and so is its path \"{relative}\" relative to the working directory \"{Environment.CurrentDirectory}\"");
    }

    /// <summary>True when <paramref name="path"/> fits in sockaddr_un.</summary>
    public static bool Fits(string path) => Encoding.UTF8.GetByteCount(path) <= MaxPathBytes;
}
