using System.Buffers.Binary;
using System.Net.Sockets;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Ttrpc.Transport;

/// <summary>The process at the other end of a Unix socket, as the kernel saw it at connect time (SO_PEERCRED).</summary>
/// <param name="ProcessId">The peer's pid.</param>
/// <param name="UserId">The peer's effective uid.</param>
/// <param name="GroupId">The peer's effective gid.</param>
public readonly record struct PeerCredentials(int ProcessId, uint UserId, uint GroupId)
{
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;

    /// <summary>Reads the peer credentials of a connected Unix socket.</summary>
    public static PeerCredentials Of(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }: three 32-bit host-order integers.
        Span<byte> ucred = stackalloc byte[12];
        int n = socket.GetRawSocketOption(SolSocket, SoPeerCred, ucred);
        if (n != 12)
        {
            throw new IOException($"getsockopt(SO_PEERCRED) returned {n} bytes, expected 12");
        }

        return new PeerCredentials(
            BinaryPrimitives.ReadInt32LittleEndian(ucred),
            BinaryPrimitives.ReadUInt32LittleEndian(ucred[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(ucred[8..]));
    }

    /// <summary>This process's pid and current effective uid and gid.</summary>
    public static PeerCredentials OfThisProcess() =>
        new(Environment.ProcessId, Libc.GetEuid(), Libc.GetEgid());

    /// <summary>True when the peer runs with this process's effective uid and gid (ttrpc's same-user rule).</summary>
    public bool IsSameUserAsThisProcess() => IsSameUserAs(OfThisProcess());

    /// <summary>True when the peer has the effective uid and gid of <paramref name="other"/>.</summary>
    public bool IsSameUserAs(PeerCredentials other) => UserId == other.UserId && GroupId == other.GroupId;
}
