namespace FirecrackerContainerd.Vsock;

/// <summary>How to serve one VM's vsock device: where QEMU connects, where host programs connect, and
/// the guest's context id.</summary>
/// <param name="SocketPath">Unix socket the device listens on for QEMU's vhost-user connection.</param>
/// <param name="UdsPath">Hybrid vsock socket (Firecracker's uds_path): host clients CONNECT here, and
/// guest connections to host port P go to <c>UdsPath_P</c>.</param>
/// <param name="GuestCid">The guest's context id (3 or more; 0-2 are reserved).</param>
public sealed record VhostUserVsockOptions(string SocketPath, string UdsPath, ulong GuestCid)
{
    /// <summary>Smallest usable guest CID; 0, 1 and 2 (the host) are reserved.</summary>
    public const ulong MinGuestCid = 3;

    /// <summary>Largest CID Linux accepts (it is a u32 with U32_MAX reserved).</summary>
    public const ulong MaxGuestCid = uint.MaxValue - 1;

    /// <summary>Throws when an option cannot work.</summary>
    public void Validate()
    {
        if (GuestCid is < MinGuestCid or > MaxGuestCid)
        {
            throw new ArgumentOutOfRangeException(nameof(GuestCid), GuestCid, $"guest cid must be between {MinGuestCid} and {MaxGuestCid}");
        }
        if (string.IsNullOrEmpty(SocketPath))
        {
            throw new ArgumentException("the vhost-user socket path is empty", nameof(SocketPath));
        }
        if (string.IsNullOrEmpty(UdsPath))
        {
            throw new ArgumentException("the vsock uds path is empty", nameof(UdsPath));
        }
    }
}
