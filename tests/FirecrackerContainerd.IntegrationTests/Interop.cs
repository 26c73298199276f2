using System.Runtime.InteropServices;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>libc calls the fixture needs to stop the processes it owns gracefully.</summary>
internal static partial class Interop
{
    internal const int SIGTERM = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    internal static partial uint GetEffectiveUserId();
}
