using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace FirecrackerContainerd.Vsock.Unix;

/// <summary>The first half of the hybrid vsock handshake on the host Unix socket: the client sends
/// <c>CONNECT &lt;port&gt;\n</c>; the device answers with a <see cref="ConnectAcknowledgement"/> once the guest accepted.</summary>
/// <remarks>Both ends use it: <see cref="HybridVsockDialer"/> writes the line, <see cref="HybridVsockMuxer"/> reads it.</remarks>
internal static class ConnectRequest
{
    /// <summary>Longest request line accepted, newline included (as Firecracker).</summary>
    public const int MaxLineLength = 32;

    private const string Verb = "CONNECT";

    /// <summary>The request line for guest port <paramref name="port"/>, newline included.</summary>
    public static byte[] Format(uint port) => Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{Verb} {port}\n"));

    /// <summary>Parses a request line (without its newline): the verb in any case, one space, a u32.</summary>
    public static bool TryParse(ReadOnlySpan<byte> line, out uint port)
    {
        port = 0;
        if (line.Length <= Verb.Length + 1 || line.Length >= MaxLineLength || line[Verb.Length] != (byte)' ')
        {
            return false;
        }
        for (int i = 0; i < Verb.Length; i++)
        {
            if ((line[i] | 0x20) != (Verb[i] | 0x20))
            {
                return false;
            }
        }
        ReadOnlySpan<byte> digits = line[(Verb.Length + 1)..];
        foreach (byte b in digits)
        {
            if (b is < (byte)'0' or > (byte)'9')
            {
                return false;
            }
        }
        return uint.TryParse(Encoding.ASCII.GetString(digits), NumberStyles.None, CultureInfo.InvariantCulture, out port);
    }

    /// <summary>Reads one request line byte by byte (the bytes after it belong to the stream) and
    /// returns its port, or null for anything malformed, too long or cut short.</summary>
    public static async Task<uint?> ReadAsync(Socket socket, CancellationToken cancellationToken)
    {
        byte[] line = new byte[MaxLineLength];
        for (int length = 0; length < MaxLineLength; length++)
        {
            int read = await socket.ReceiveAsync(line.AsMemory(length, 1), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return null;
            }
            if (line[length] == (byte)'\n')
            {
                return TryParse(line.AsSpan(0, length), out uint port) ? port : null;
            }
        }
        return null;
    }
}
