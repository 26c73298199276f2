using FirecrackerContainerd.Agent.Native;
using Microsoft.Win32.SafeHandles;

namespace FirecrackerContainerd.Agent.Stdio;

/// <summary>
/// The master side of a container process's terminal: output is read from it, input and the
/// terminal's EOF character are written to it, and its window size is set on it.
/// </summary>
internal sealed class PseudoTerminal : IDisposable
{
    private readonly SafeFileHandle _master;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly NonBlockingFdStream _writer;

    public PseudoTerminal(int masterFd, string name)
    {
        _master = new SafeFileHandle(masterFd, ownsHandle: true);
        Name = name;

        // Each direction gets its own fd (a duplicate: they share the master's non-blocking flag, which the slave does not).
        _writer = new NonBlockingFdStream(Interop.Duplicate(masterFd, name), forReading: false, $"terminal {name}");
    }

    /// <summary>The terminal's name as the runtime reported it (e.g. /dev/pts/0 in the container).</summary>
    public string Name { get; }

    /// <summary>A stream of the terminal's output; its reads end (EIO is EOF) once every slave fd is closed.</summary>
    public Stream OpenOutput() =>
        new TerminalOutputStream(new NonBlockingFdStream(WithMaster(fd => Interop.Duplicate(fd, Name)), forReading: true, $"terminal {Name}"));

    /// <summary>Writes input, as if typed.</summary>
    public async Task WriteAsync(ReadOnlyMemory<byte> input, CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _writer.WriteAsync(input, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Types the terminal's EOF character: a reader in canonical mode sees end of input.</summary>
    public Task WriteEndOfFileAsync(CancellationToken cancellationToken)
    {
        byte eof = WithMaster(fd => Interop.EndOfFileCharacter(fd, Name));
        return WriteAsync(new[] { eof == 0 ? (byte)0x04 : eof }, cancellationToken);
    }

    /// <summary>Sets the window size; the foreground process group gets SIGWINCH.</summary>
    public void Resize(ushort columns, ushort rows) => WithMaster(fd =>
    {
        Interop.SetWindowSize(fd, rows, columns, Name);
        return true;
    });

    /// <inheritdoc/>
    public void Dispose()
    {
        _writer.Dispose();
        _master.Dispose();
        _writeGate.Dispose();
    }

    // The master's fd number is used only while the handle is held open: once closed, the number may
    // already belong to another file. A closed terminal throws ObjectDisposedException.
    private T WithMaster<T>(Func<int, T> call)
    {
        bool held = false;
        try
        {
            _master.DangerousAddRef(ref held);
            return call((int)_master.DangerousGetHandle());
        }
        finally
        {
            if (held)
            {
                _master.DangerousRelease();
            }
        }
    }

    /// <summary>Reads of a terminal master, where EIO means the other side has closed: EOF.</summary>
    private sealed class TerminalOutputStream(Stream inner) : Stream
    {
        private const int EIO = 5;

        public override bool CanRead => true;

        public override bool CanWrite => false;

        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            try
            {
                return inner.Read(buffer, offset, count);
            }
            catch (IOException e) when (IsEio(e))
            {
                return 0;
            }
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e) when (IsEio(e))
            {
                return 0;
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        // The stream's IOException carries the raw errno as its HResult.
        private static bool IsEio(IOException e) => e.HResult == EIO;
    }
}
