using FirecrackerContainerd.Native;
namespace FirecrackerContainerd.Vmm.Selection;

/// <summary>Checks that <c>/dev/kvm</c> opens read-write and speaks KVM API version 12.</summary>
/// <remarks>
/// This is necessary, not sufficient: a nested, paravirtual KVM passes it and still fails to run a
/// stock kernel. A driver that can afford a probe boot (bounded in time, cached per host) should
/// supply a stronger <see cref="IKvmProbe"/> (the QEMU driver boots a guest: <see cref="Qemu.KvmBootProbe"/>).
/// </remarks>
internal sealed class KvmDeviceProbe : IKvmProbe
{
    /// <summary>The only KVM API version Linux has ever shipped.</summary>
    private const int KvmApiVersion = 12;

    /// <summary>_IO(0xAE, 0x00).</summary>
    private const nuint KvmGetApiVersion = 0xAE00;

    /// <summary>Probes <paramref name="devicePath"/> (default <c>/dev/kvm</c>).</summary>
    public KvmDeviceProbe(string devicePath = "/dev/kvm") => DevicePath = devicePath;

    /// <summary>The KVM device probed.</summary>
    public string DevicePath { get; }

    /// <inheritdoc/>
    public Task<KvmVerdict> ProbeAsync(CancellationToken cancellationToken)
    {
        var fd = Interop.TryOpen(DevicePath, Libc.O_RDWR);
        if (fd < 0)
        {
            return Task.FromResult(new KvmVerdict(false, $"{DevicePath} cannot be opened read-write: {Interop.ErrnoText(-fd)}"));
        }

        try
        {
            var version = Interop.IoctlNoArg(fd, KvmGetApiVersion);
            return Task.FromResult(version == KvmApiVersion
                ? new KvmVerdict(true, $"{DevicePath} answers KVM API version {KvmApiVersion}")
                : new KvmVerdict(false, $"{DevicePath} answers KVM_GET_API_VERSION with {version}, expected {KvmApiVersion}"));
        }
        finally
        {
            Libc.CloseQuietly(fd);
        }
    }
}
