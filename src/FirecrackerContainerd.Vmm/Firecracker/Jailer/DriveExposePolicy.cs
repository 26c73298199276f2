using System.Text.Json.Serialization;

namespace FirecrackerContainerd.Vmm.Firecracker.Jailer;

/// <summary>How the files a jailed Firecracker opens (kernel, initrd, drives) get into its chroot, as upstream firecracker-containerd's policy of that name.</summary>
public enum DriveExposePolicy
{
    /// <summary>Each file is copied into the jail and owned by the VM's uid (upstream's default): costs the copy, shares nothing.</summary>
    [JsonStringEnumMemberName("copy")]
    Copy,

    /// <summary>Each file is bind-mounted onto a file in the jail (read-only for a read-only drive) and unmounted at VM end: no copy, the host file itself.</summary>
    [JsonStringEnumMemberName("bind")]
    Bind,
}
