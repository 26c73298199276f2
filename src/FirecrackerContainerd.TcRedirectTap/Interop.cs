using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.TcRedirectTap;

/// <summary>The plugin's own identity, the tap's default owner and group as upstream's.</summary>
internal static class Interop
{
    public static uint EffectiveUid => Libc.GetEuid();

    public static uint EffectiveGid => Libc.GetEgid();
}
