using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>Finds QEMU, or fails the test with what to install.</summary>
internal static class QemuBinary
{
    public static string Require()
    {
        string? qemu = ExecutableLookup.Find("qemu-system-x86_64");
        Assert.True(qemu is not null, "qemu-system-x86_64 is not installed: run scripts/install-deps (Debian package qemu-system-x86)");
        return qemu;
    }
}
