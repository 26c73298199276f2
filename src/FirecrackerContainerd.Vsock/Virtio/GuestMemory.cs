namespace FirecrackerContainerd.Vsock.Virtio;

/// <summary>One contiguous piece of guest RAM as the device sees it: where the guest, the VMM and this
/// process each address it.</summary>
/// <param name="GuestAddress">Guest physical address of the first byte.</param>
/// <param name="Size">Length in bytes.</param>
/// <param name="UserAddress">Address of the first byte in the VMM's address space (vring addresses use it).</param>
/// <param name="Host">Address of the first byte in this process.</param>
internal readonly record struct GuestMemoryRegion(ulong GuestAddress, ulong Size, ulong UserAddress, nint Host);

/// <summary>The guest RAM regions the VMM shared with the device; every guest-supplied address is
/// translated here and must fall entirely inside one region.</summary>
internal sealed class GuestMemory : IDisposable
{
    private readonly GuestMemoryRegion[] _regions;
    private readonly Action? _release;

    public GuestMemory(IReadOnlyList<GuestMemoryRegion> regions, Action? release)
    {
        _regions = [.. regions];
        _release = release;
    }

    public IReadOnlyList<GuestMemoryRegion> Regions => _regions;

    /// <summary>Translates a guest physical range to a host pointer; false when any byte lies outside
    /// guest RAM or the range crosses a region boundary.</summary>
    public bool TryTranslate(ulong guestAddress, ulong length, out nint host)
    {
        foreach (GuestMemoryRegion region in _regions)
        {
            if (Contains(region.GuestAddress, region.Size, guestAddress, length))
            {
                host = region.Host + (nint)(guestAddress - region.GuestAddress);
                return true;
            }
        }
        host = 0;
        return false;
    }

    /// <summary>Translates a range given in the VMM's address space (as SET_VRING_ADDR does).</summary>
    public bool TryTranslateUser(ulong userAddress, ulong length, out nint host)
    {
        foreach (GuestMemoryRegion region in _regions)
        {
            if (Contains(region.UserAddress, region.Size, userAddress, length))
            {
                host = region.Host + (nint)(userAddress - region.UserAddress);
                return true;
            }
        }
        host = 0;
        return false;
    }

    private static bool Contains(ulong start, ulong size, ulong address, ulong length) =>
        address >= start && address - start <= size && length <= size - (address - start);

    public void Dispose() => _release?.Invoke();
}
