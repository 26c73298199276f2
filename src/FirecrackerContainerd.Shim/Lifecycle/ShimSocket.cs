using System.Net.Sockets;
using FirecrackerContainerd.Ttrpc.Transport;

namespace FirecrackerContainerd.Shim.Lifecycle;

/// <summary>The shim's listening socket under /run/containerd/s: probing, binding with stale-socket handling, removal.</summary>
public static class ShimSocket
{
    // SOL_SOCKET and SO_PEERCRED (Linux): the listening peer's pid, uid and gid at listen(2).
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;

    // PF_EXITING in the flags field of /proc/PID/stat: the process is on its way out (SIGKILL taken).
    private const ulong ProcessExiting = 0x4;

    /// <summary>
    /// True when a live process accepts a connection on <paramref name="path"/> right now. A shim killed a moment ago
    /// still holds its listening socket while the kernel closes its files, and containerd runs the delete verb as soon
    /// as its connection drops: a listener whose process is exiting, or gone, does not count.
    /// </summary>
    public static async Task<bool> AnswersAsync(string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
        {
            return false;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            using var socket = await UnixSocketTransport.ConnectAsync(path, timeout.Token).ConfigureAwait(false);
            return !IsExiting(PeerPid(socket));
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>
    /// Binds <paramref name="path"/> with mode 0600, creating its directory. A socket file nobody answers on is
    /// stale (left by a shim that died) and is replaced; a live one is an error.
    /// </summary>
    /// <exception cref="IOException">Another shim serves on the path, or binding failed.</exception>
    public static async Task<Socket> BindAsync(string path, CancellationToken cancellationToken)
    {
        string directory = Path.GetDirectoryName(path)
            ?? throw new ArgumentException($"socket path {path} has no directory", nameof(path));
        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return UnixSocketTransport.Listen(path);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse && attempt == 0)
            {
                if (await AnswersAsync(path, cancellationToken).ConfigureAwait(false))
                {
                    throw new IOException($"shim socket {path} is already served by a running shim", e);
                }

                Remove(path);
            }
            catch (SocketException e)
            {
                throw new IOException($"bind shim socket {path}: {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// Whether process <paramref name="pid"/> has exited or is exiting, read from its <c>/proc/PID/stat</c>; false
    /// when the pid is unknown (0: a peer in another pid namespace), since then nothing says it is dying.
    /// </summary>
    public static bool IsExiting(int pid)
    {
        if (pid <= 0)
        {
            return false;
        }

        try
        {
            return IsExiting(File.ReadAllText($"/proc/{pid}/stat"));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return true;
        }
    }

    /// <summary>
    /// Whether a <c>/proc/PID/stat</c> line describes a process that is a zombie, dead, or exiting (PF_EXITING in its
    /// flags). The command name may hold spaces and parentheses, so the fields are counted after its last ')'.
    /// </summary>
    public static bool IsExiting(string stat)
    {
        ArgumentNullException.ThrowIfNull(stat);
        int end = stat.LastIndexOf(')');
        string[] fields = stat[(end + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (end < 0 || fields.Length < 7 || !ulong.TryParse(fields[6], System.Globalization.CultureInfo.InvariantCulture, out ulong flags))
        {
            throw new FormatException($"not a /proc/PID/stat line: {stat}");
        }

        // fields[0] is the state (field 3), fields[6] the flags (field 9).
        return fields[0] is "Z" or "X" or "x" || (flags & ProcessExiting) != 0;
    }

    private static int PeerPid(Socket socket)
    {
        Span<byte> credentials = stackalloc byte[12];
        int length = socket.GetRawSocketOption(SolSocket, SoPeerCred, credentials);
        return length >= 4 ? BitConverter.ToInt32(credentials) : 0;
    }

    /// <summary>Removes the socket file if it exists.</summary>
    public static void Remove(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (DirectoryNotFoundException)
        {
            // Nothing to remove.
        }
    }
}
