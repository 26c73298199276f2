using System.Runtime.InteropServices;

namespace FirecrackerContainerd.Core;

/// <summary>How to open a FIFO; mirrors the open(2) flags containerd/fifo takes.</summary>
[Flags]
public enum FifoMode
{
    /// <summary>No flags (invalid on its own).</summary>
    None = 0,

    /// <summary>Open the read end.</summary>
    Read = 1,

    /// <summary>Open the write end.</summary>
    Write = 2,

    /// <summary>Open both ends; never waits for a peer.</summary>
    ReadWrite = Read | Write,

    /// <summary>Create the FIFO when it does not exist (an existing FIFO is fine).</summary>
    Create = 4,

    /// <summary>Return at once; the stream's reads and writes wait until the other end has opened.</summary>
    NonBlocking = 8,
}

/// <summary>
/// Named pipes with containerd/fifo's semantics: an open that would wait for the other end never blocks
/// the caller's thread, can be cancelled, and hands back a blocking file descriptor once it completes.
/// </summary>
public static partial class Fifo
{
    private const uint FileTypeMask = 0xF000; // S_IFMT
    private const uint FileTypeFifo = 0x1000; // S_IFIFO
    private const int StatBufferSize = 256; // larger than struct stat on every supported architecture

    /// <summary>mkfifo <paramref name="path"/>; an existing FIFO is accepted, any other existing file is an error.</summary>
    public static void Create(string path, UnixFileMode mode)
    {
        ArgumentNullException.ThrowIfNull(path);
        int errno = Interop.Mkfifo(path, mode);
        if (errno == 0)
        {
            return;
        }

        if (errno == Interop.EEXIST)
        {
            if (IsFifo(path))
            {
                return;
            }

            throw new UnixIOException(errno, $"file {path} is not fifo");
        }

        throw new UnixIOException(errno, $"error creating fifo {path}: {Interop.ErrnoText(errno)}");
    }

    /// <summary>True when <paramref name="path"/> (following symlinks) is a FIFO.</summary>
    public static bool IsFifo(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        Span<byte> buffer = stackalloc byte[StatBufferSize];
        if (Stat(path, ref MemoryMarshal.GetReference(buffer)) != 0)
        {
            return false;
        }

        // st_mode sits after st_dev and st_ino on arm64, and after st_nlink as well on x86_64.
        int modeOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16;
        uint mode = BitConverter.ToUInt32(buffer.Slice(modeOffset, sizeof(uint)));
        return (mode & FileTypeMask) == FileTypeFifo;
    }

    /// <summary>
    /// Opens the FIFO at <paramref name="path"/>. Without <see cref="FifoMode.NonBlocking"/> the task completes
    /// once the other end has opened (or the token is cancelled); with it, the stream comes back at once and
    /// its I/O waits for <see cref="FifoStream.WhenOpen"/>.
    /// </summary>
    public static async Task<FifoStream> OpenAsync(
        string path, FifoMode flags, UnixFileMode mode, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(path);
        if ((flags & FifoMode.ReadWrite) == 0)
        {
            throw new ArgumentException("a FIFO is opened for reading, writing or both", nameof(flags));
        }

        cancellationToken.ThrowIfCancellationRequested();
        if ((flags & FifoMode.Create) != 0)
        {
            Create(path, mode);
        }
        else if (!File.Exists(path))
        {
            throw new UnixIOException(2, $"failed to open fifo {path}: no such file or directory");
        }
        else if (!IsFifo(path))
        {
            throw new UnixIOException(Interop.ENXIO, $"file {path} is not fifo");
        }

        var stream = new FifoStream(path, flags & FifoMode.ReadWrite, cancellationToken);
        if ((flags & FifoMode.NonBlocking) != 0 && (flags & FifoMode.ReadWrite) != FifoMode.ReadWrite)
        {
            return stream;
        }

        try
        {
            await stream.WhenOpen.ConfigureAwait(false);
            return stream;
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Stat(string path, ref byte statBuffer);
}
