using System.Runtime.InteropServices;

namespace FirecrackerContainerd.Ttrpc.Transport;

/// <summary>The few libc calls the transport needs.</summary>
internal static partial class Interop
{
    [LibraryImport("libc", EntryPoint = "geteuid")]
    internal static partial uint GetEffectiveUserId();

    [LibraryImport("libc", EntryPoint = "getegid")]
    internal static partial uint GetEffectiveGroupId();
}
