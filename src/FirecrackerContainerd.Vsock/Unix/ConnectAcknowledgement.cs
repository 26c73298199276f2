using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace FirecrackerContainerd.Vsock.Unix;

/// <summary>The second half of the hybrid vsock handshake: once the guest accepted a <see cref="ConnectRequest"/>,
/// the device answers <c>OK &lt;host port&gt;\n</c> before any data.</summary>
/// <remarks>Both ends use it: <see cref="HybridVsockMuxer"/> writes the line, <see cref="HybridVsockDialer"/> reads it.</remarks>
internal static class ConnectAcknowledgement
{
    /// <summary>A line this long without its newline is refused: "OK " and a 32-bit port number never come near it.</summary>
    public const int MaxLineLength = 16;

    private const string Prefix = "OK ";

    /// <summary>The acknowledgement line for a connection the guest accepted, newline included.</summary>
    public static byte[] Format(uint hostPort) => Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{Prefix}{hostPort}\n"));

    /// <summary>Whether <paramref name="line"/> (without its newline) is an acknowledgement: "OK ", then a u32 in decimal.</summary>
    public static bool TryParse(string line, out uint hostPort)
    {
        ArgumentNullException.ThrowIfNull(line);
        hostPort = 0;
        return line.StartsWith(Prefix, StringComparison.Ordinal)
            && uint.TryParse(line.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out hostPort);
    }

    /// <summary>Reads the answer line without its newline, byte by byte: whatever the guest sends right after it belongs to the caller.
    /// Bytes outside printable ASCII read as '?', so the line can be quoted in an error.</summary>
    /// <exception cref="IOException">The device closed the connection first, or the line reached <see cref="MaxLineLength"/>.</exception>
    public static async Task<string> ReadLineAsync(Socket socket, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(socket);
        var line = new StringBuilder();
        byte[] one = new byte[1];
        while (line.Length < MaxLineLength)
        {
            int n = await socket.ReceiveAsync(one, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException(line.Length == 0
                    ? "the VMM closed the connection (is the guest listening on that port?)"
                    : $"the VMM closed the connection after \"{line}\"");
            }

            if (one[0] == '\n')
            {
                return line.ToString();
            }

            line.Append(one[0] is >= 0x20 and < 0x7f ? (char)one[0] : '?');
        }

        throw new IOException($"acknowledgement longer than {MaxLineLength} bytes: \"{line}\"");
    }
}
