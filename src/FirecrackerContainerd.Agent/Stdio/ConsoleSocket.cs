using System.Net.Sockets;
using FirecrackerContainerd.Agent.Native;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Agent.Stdio;

/// <summary>
/// The Unix socket an OCI runtime's --console-socket connects to: the runtime creates the process's
/// terminal inside the container and sends its master fd here (SCM_RIGHTS), one socket per process.
/// </summary>
internal sealed class ConsoleSocket : IDisposable
{
    // sun_path holds 108 bytes including the terminating NUL.
    private const int MaxPathBytes = 107;

    // runc and crun send the terminal's name with the fd; anything longer is not a path.
    private const int MaxNameBytes = 4096;

    private readonly Socket _listener;

    private ConsoleSocket(Socket listener, string path)
    {
        _listener = listener;
        Path = path;
    }

    /// <summary>The socket's path, for the runtime's --console-socket.</summary>
    public string Path { get; }

    /// <summary>Listens at <paramref name="path"/> (replacing a stale socket file).</summary>
    public static ConsoleSocket Listen(string path)
    {
        if (System.Text.Encoding.UTF8.GetByteCount(path) > MaxPathBytes)
        {
            throw new IOException($"console socket {path}: the path is longer than a Unix socket address allows");
        }

        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        File.Delete(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            socket.Listen(1);
            return new ConsoleSocket(socket, path);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Waits for the runtime to connect and send the terminal's master; the caller owns the result.</summary>
    public async Task<PseudoTerminal> ReceiveMasterAsync(CancellationToken cancellationToken)
    {
        using Socket connection = await _listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
        byte[] name = new byte[MaxNameBytes];
        var fds = new List<int>();
        int bytesWithoutFd = 0;
        while (true)
        {
            // A zero-byte receive waits until the message is there without taking it.
            await connection.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            int n;
            try
            {
                n = Interop.ReceiveWithFds((int)connection.Handle, name, fds, Path);
            }
            catch (IOException)
            {
                CloseAll(fds);
                throw;
            }

            // The fd rides on some byte of the stream, not necessarily the first one read; a runtime
            // that keeps talking without sending it is cut off.
            if (n < 0 || (n > 0 && fds.Count == 0 && (bytesWithoutFd += n) <= MaxNameBytes))
            {
                continue;
            }

            if (fds.Count == 1 && Interop.IsTerminal(fds[0]))
            {
                string terminalName = System.Text.Encoding.UTF8.GetString(name, 0, n).TrimEnd('\0');
                AgentTrace.Write($"console socket {Path}: received terminal {terminalName} as fd {fds[0]}");
                return new PseudoTerminal(fds[0], terminalName);
            }

            CloseAll(fds);
            throw new IOException(n == 0 && fds.Count == 0
                ? $"console socket {Path}: the runtime hung up without sending the terminal"
                : $"console socket {Path}: expected one terminal fd, got {fds.Count} fd(s) that are not a single terminal");
        }
    }

    private static void CloseAll(List<int> fds)
    {
        foreach (int fd in fds)
        {
            Libc.CloseQuietly(fd);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _listener.Dispose();
        File.Delete(Path);
    }
}
