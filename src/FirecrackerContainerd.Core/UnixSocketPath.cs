using System.Globalization;
using System.Text;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Core;

/// <summary>A path to connect to a Unix socket that fits in <c>sockaddr_un</c> (108 bytes with the NUL), however deep the socket lies.</summary>
/// <remarks>
/// VM directories can be deep (a 76-character namespace and a 76-character VM id alone exceed the
/// limit), so the VMM binds its sockets relative to its working directory. A client elsewhere uses,
/// in order: the absolute path when it fits; the path relative to its own working directory when
/// that fits; else <c>/proc/self/fd/&lt;n&gt;/&lt;name&gt;</c> through an O_PATH descriptor of the
/// socket's directory, which this object holds open until disposed.
/// </remarks>
public sealed class UnixSocketPath : IDisposable
{
    /// <summary>The longest path sockaddr_un.sun_path holds (108 bytes including the terminating NUL).</summary>
    public const int MaxPathBytes = 107;

    private const int O_PATH = 0x200000;
    private const int O_DIRECTORY = 0x10000;
    private const int O_NOFOLLOW = 0x20000;

    private int _fd;

    private UnixSocketPath(string socketPath, string connectPath, int fd)
    {
        SocketPath = socketPath;
        ConnectPath = connectPath;
        _fd = fd;
    }

    /// <summary>The socket's full path.</summary>
    public string SocketPath { get; }

    /// <summary>A path to the same socket short enough for connect(2); valid while this object is not disposed.</summary>
    public string ConnectPath { get; }

    /// <summary>Chooses a connectable path for the socket at <paramref name="socketPath"/>.</summary>
    public static UnixSocketPath For(string socketPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        var full = Path.GetFullPath(socketPath);
        if (Fits(full))
        {
            return new UnixSocketPath(full, full, -1);
        }

        var relative = Path.GetRelativePath(Environment.CurrentDirectory, full);
        if (Fits(relative))
        {
            return new UnixSocketPath(full, relative, -1);
        }

        var directory = Path.GetDirectoryName(full)!;
        var fd = Interop.Open(directory, O_PATH | O_DIRECTORY);
        if (fd < 0)
        {
            throw new UnixIOException(-fd, $"open {directory}: {Interop.ErrnoText(-fd)}");
        }

        var viaFd = "/proc/self/fd/" + fd.ToString(CultureInfo.InvariantCulture) + "/" + Path.GetFileName(full);
        if (!Fits(viaFd))
        {
            _ = Libc.Close(fd);
            throw new PathTooLongException($"unix socket \"{full}\" has a file name too long to connect to ({viaFd})");
        }

        return new UnixSocketPath(full, viaFd, fd);
    }

    /// <summary>
    /// A path to the socket at <paramref name="socketPath"/> that nobody can redirect: the socket is opened without
    /// following a symbolic link at its last component, checked to be a socket, and reached through
    /// <c>/proc/self/fd/&lt;n&gt;</c>. For sockets in a directory an unprivileged (jailed) process owns: it could put a
    /// link to another host socket there, and the shim, which is root, would connect to that instead.
    /// </summary>
    /// <exception cref="FileNotFoundException">Nothing is at <paramref name="socketPath"/> yet.</exception>
    /// <exception cref="IOException">What is there is not a socket (a symbolic link, say).</exception>
    public static UnixSocketPath ForExistingSocket(string socketPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        var full = Path.GetFullPath(socketPath);
        int fd = Interop.Open(full, O_PATH | O_NOFOLLOW);
        if (fd < 0)
        {
            throw -fd == Libc.ENOENT
                ? new FileNotFoundException($"unix socket {full} does not exist", full)
                : new UnixIOException(-fd, $"open {full}: {Interop.ErrnoText(-fd)}");
        }

        try
        {
            int type = Libc.FileType(fd, string.Empty, Libc.AT_EMPTY_PATH);
            if (type != Libc.S_IFSOCK)
            {
                throw new IOException($"{full} is not a unix socket but {(type == Libc.S_IFLNK ? "a symbolic link" : $"a file of type 0x{type:x}")}: refusing to connect to it");
            }
        }
        catch
        {
            _ = Libc.Close(fd);
            throw;
        }

        return new UnixSocketPath(full, "/proc/self/fd/" + fd.ToString(CultureInfo.InvariantCulture), fd);
    }

    /// <summary>True when <paramref name="path"/> fits in sockaddr_un.</summary>
    public static bool Fits(string path) => Encoding.UTF8.GetByteCount(path) <= MaxPathBytes;

    /// <summary>Closes the descriptor, if one was needed.</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            _ = Libc.Close(fd);
        }
    }
}
