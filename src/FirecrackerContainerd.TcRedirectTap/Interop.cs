using System.Runtime.InteropServices;

namespace FirecrackerContainerd.TcRedirectTap;

/// <summary>The plugin's own identity, the tap's default owner and group as upstream's.</summary>
internal static partial class Interop
{
    public static uint EffectiveUid => GetEuid();

    public static uint EffectiveGid => GetEgid();

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "getegid")]
    private static partial uint GetEgid();
}
