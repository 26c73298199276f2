using System.Buffers;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Vmm.Qemu;

/// <summary>
/// A client of QEMU's machine protocol (QMP) on a Unix socket: newline-delimited JSON, commands matched
/// to answers by id, asynchronous events delivered on <see cref="Events"/>.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    /// <summary>The longest line accepted from QEMU; anything longer means the peer is not QMP.</summary>
    public const int MaxLineBytes = 4 << 20;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly ConcurrentDictionary<long, TaskCompletionSource<JsonElement>> _pending = new();
    private readonly Channel<QmpEvent> _events = Channel.CreateBounded<QmpEvent>(
        new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = false });
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _closing = new();
    private readonly string _path;
    private Task _readLoop = Task.CompletedTask;
    private long _nextId;
    private int _disposed;
    private Exception? _closedBecause;

    private QmpClient(Socket socket, string path)
    {
        _socket = socket;
        _path = path;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>Events QEMU sent (STOP, RESUME, SHUTDOWN, ...). The oldest are dropped when nobody reads.</summary>
    public ChannelReader<QmpEvent> Events => _events.Reader;

    /// <summary>Completes when the connection has closed (QEMU exited or <see cref="DisposeAsync"/>).</summary>
    public Task Completion => _readLoop;

    /// <summary>Connects to the QMP socket at <paramref name="path"/>, reads the greeting and enters command mode.</summary>
    public static async Task<QmpClient> ConnectAsync(string path, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            // QEMU makes the socket; jailed, in a directory QEMU's own user owns: a link put there is not followed.
            using UnixSocketPath target = UnixSocketPath.ForExistingSocket(path);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(target.ConnectPath), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var client = new QmpClient(socket, path);
        try
        {
            await client.HandshakeAsync(cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Runs <paramref name="command"/> and returns its "return" value; a QMP error becomes <see cref="QmpException"/>.</summary>
    public Task<JsonElement> ExecuteAsync(
        string command, Action<Utf8JsonWriter>? writeArguments, CancellationToken cancellationToken) =>
        ExecuteAsync(command, writeArguments, descriptor: null, cancellationToken);

    /// <summary>
    /// Runs <paramref name="command"/> with the open file <paramref name="descriptor"/> attached (SCM_RIGHTS), as QMP's
    /// <c>add-fd</c> and <c>getfd</c> expect: QEMU gets its own copy; the caller still owns and closes its descriptor.
    /// </summary>
    public Task<JsonElement> ExecuteWithDescriptorAsync(
        string command, Action<Utf8JsonWriter>? writeArguments, SafeHandle descriptor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        return ExecuteAsync(command, writeArguments, descriptor, cancellationToken);
    }

    private async Task<JsonElement> ExecuteAsync(
        string command, Action<Utf8JsonWriter>? writeArguments, SafeHandle? descriptor, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        long id = Interlocked.Increment(ref _nextId);
        var answer = new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = answer;
        try
        {
            if (_closedBecause is { } closed)
            {
                throw Closed(command, closed);
            }

            byte[] line = EncodeCommand(command, id, writeArguments);
            await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                int sent = descriptor is null ? 0 : SendWithDescriptor(line, descriptor);
                await _stream.WriteAsync(line.AsMemory(sent), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                throw Closed(command, e);
            }
            finally
            {
                _writeLock.Release();
            }

            try
            {
                return await answer.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (QmpException e) when (e.Command.Length == 0)
            {
                throw new QmpException(command, e.ErrorClass, e.Description);
            }
            catch (ConnectionLostException e)
            {
                throw Closed(command, e.InnerException ?? e);
            }
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>Runs a command without arguments.</summary>
    public Task<JsonElement> ExecuteAsync(string command, CancellationToken cancellationToken) =>
        ExecuteAsync(command, null, cancellationToken);

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _closing.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        try
        {
            await _readLoop.ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }

        await _stream.DisposeAsync().ConfigureAwait(false);
        _closing.Dispose();
        _writeLock.Dispose();
    }

    // One sendmsg carries the descriptor with the line's first bytes; the rest of the line follows as plain bytes.
    private unsafe int SendWithDescriptor(byte[] line, SafeHandle descriptor)
    {
        const int controlSize = 24; // CMSG_SPACE(sizeof(int)): a 16-byte cmsghdr and the int, padded to 8
        const int controlLength = 20; // CMSG_LEN(sizeof(int))
        byte* control = stackalloc byte[controlSize];
        new Span<byte>(control, controlSize).Clear();
        *(nuint*)control = controlLength;
        *(int*)(control + 8) = Native.Libc.SOL_SOCKET;
        *(int*)(control + 12) = Native.Libc.SCM_RIGHTS;
        bool added = false;
        descriptor.DangerousAddRef(ref added);
        try
        {
            *(int*)(control + 16) = (int)descriptor.DangerousGetHandle();
            fixed (byte* data = line)
            {
                var iov = new Native.Libc.IoVec { Base = data, Length = (nuint)line.Length };
                var message = new Native.Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = controlSize };
                while (true)
                {
                    nint n = Interop.SendMsg((int)_socket.Handle, &message, 0);
                    if (n >= 0)
                    {
                        return (int)n;
                    }

                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Native.Libc.EAGAIN)
                    {
                        // The socket is non-blocking and full; QEMU reads its monitor promptly.
                        Thread.Sleep(1);
                    }
                    else if (errno != Native.Libc.EINTR)
                    {
                        throw new IOException($"sendmsg with a descriptor on QMP socket {_path}: {Interop.ErrnoText(errno)}");
                    }
                }
            }
        }
        finally
        {
            if (added)
            {
                descriptor.DangerousRelease();
            }
        }
    }

    private async Task HandshakeAsync(CancellationToken cancellationToken)
    {
        var reader = new QmpLineReader(_stream);
        byte[]? greeting = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new IOException($"QMP socket {_path} closed before its greeting");
        using (JsonDocument doc = ParseLine(greeting))
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("QMP", out _))
            {
                throw new InvalidDataException($"QMP socket {_path} did not greet with a QMP object");
            }
        }

        _readLoop = Task.Run(() => ReadLoopAsync(reader), CancellationToken.None);
        await ExecuteAsync("qmp_capabilities", cancellationToken).ConfigureAwait(false);
    }

    private async Task ReadLoopAsync(QmpLineReader reader)
    {
        Exception reason = new IOException($"QMP socket {_path} closed");
        try
        {
            while (await reader.ReadLineAsync(_closing.Token).ConfigureAwait(false) is { } line)
            {
                Dispatch(line);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException
                                      or OperationCanceledException or InvalidDataException)
        {
            reason = e;
        }
        finally
        {
            _closedBecause = reason;

            // After a malformed line the stream cannot be trusted to resynchronise: hang up.
            _socket.Dispose();
            _events.Writer.TryComplete();
            foreach (var pending in _pending.Values)
            {
                pending.TrySetException(new ConnectionLostException(reason));
            }
        }
    }

    private void Dispatch(byte[] line)
    {
        using JsonDocument doc = ParseLine(line);
        JsonElement root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"QMP socket {_path} sent a non-object: {Encoding.UTF8.GetString(line)}");
        }

        if (root.TryGetProperty("event", out JsonElement name) && name.ValueKind == JsonValueKind.String)
        {
            JsonElement data = root.TryGetProperty("data", out JsonElement d) ? d.Clone() : default;
            _events.Writer.TryWrite(new QmpEvent(name.GetString()!, data, DateTimeOffset.UtcNow));
            return;
        }

        if (!root.TryGetProperty("id", out JsonElement idElement) || !idElement.TryGetInt64(out long id)
            || !_pending.TryGetValue(id, out var answer))
        {
            return; // an answer nobody waits for any more (cancelled call)
        }

        if (root.TryGetProperty("return", out JsonElement value))
        {
            answer.TrySetResult(value.Clone());
        }
        else if (root.TryGetProperty("error", out JsonElement error) && error.ValueKind == JsonValueKind.Object)
        {
            string errorClass = error.TryGetProperty("class", out JsonElement c) ? c.GetString() ?? "" : "";
            string desc = error.TryGetProperty("desc", out JsonElement de) ? de.GetString() ?? "" : "";
            answer.TrySetException(new QmpException(string.Empty, errorClass, desc));
        }
        else
        {
            answer.TrySetException(new InvalidDataException($"QMP answer without return or error: {Encoding.UTF8.GetString(line)}"));
        }
    }

    private JsonDocument ParseLine(byte[] line)
    {
        try
        {
            return JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"QMP socket {_path} sent malformed JSON: {e.Message}", e);
        }
    }

    private static byte[] EncodeCommand(string command, long id, Action<Utf8JsonWriter>? writeArguments)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("execute", command);
            if (writeArguments is not null)
            {
                json.WritePropertyName("arguments");
                json.WriteStartObject();
                writeArguments(json);
                json.WriteEndObject();
            }

            json.WriteNumber("id", id);
            json.WriteEndObject();
        }

        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    private IOException Closed(string command, Exception reason) =>
        new($"QMP {command} on {_path}: connection closed ({reason.Message})", reason);

    /// <summary>Fails calls in flight when the connection ends; turned into an error naming the command.</summary>
    private sealed class ConnectionLostException(Exception reason) : IOException(reason.Message, reason);

    /// <summary>Splits the stream into lines without trusting their length.</summary>
    private sealed class QmpLineReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[64 * 1024];
        private readonly ArrayBufferWriter<byte> _line = new();
        private int _start;
        private int _end;

        public async Task<byte[]?> ReadLineAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                int newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
                if (newline >= 0)
                {
                    _line.Write(_buffer.AsSpan(_start, newline - _start));
                    _start = newline + 1;
                    byte[] line = _line.WrittenSpan.ToArray();
                    _line.ResetWrittenCount();
                    if (line.AsSpan().Trim((byte)'\r').IsEmpty)
                    {
                        continue;
                    }

                    return line;
                }

                _line.Write(_buffer.AsSpan(_start, _end - _start));
                if (_line.WrittenCount > MaxLineBytes)
                {
                    throw new InvalidDataException($"QMP line longer than {MaxLineBytes} bytes");
                }

                _start = 0;
                _end = await stream.ReadAsync(_buffer, cancellationToken).ConfigureAwait(false);
                if (_end == 0)
                {
                    return null;
                }
            }
        }
    }
}

/// <summary>An asynchronous event from QEMU.</summary>
/// <param name="Name">The event name, e.g. SHUTDOWN, STOP, RESUME.</param>
/// <param name="Data">The event's data object, or default when it had none.</param>
/// <param name="ReceivedAt">When it arrived.</param>
public sealed record QmpEvent(string Name, JsonElement Data, DateTimeOffset ReceivedAt);

/// <summary>A QMP command that QEMU answered with an error.</summary>
public sealed class QmpException : Exception
{
    /// <summary>Creates the exception for <paramref name="command"/> with QEMU's error class and description.</summary>
    public QmpException(string command, string errorClass, string description)
        : base($"QMP {command} failed: {errorClass}: {description}")
    {
        Command = command;
        ErrorClass = errorClass;
        Description = description;
    }

    /// <summary>The command that failed.</summary>
    public string Command { get; }

    /// <summary>QEMU's error class (GenericError, CommandNotFound, DeviceNotFound, ...).</summary>
    public string ErrorClass { get; }

    /// <summary>QEMU's description, verbatim.</summary>
    public string Description { get; }
}
