using System.Globalization;

namespace FirecrackerContainerd.Agent;

/// <summary>
/// The agent's diagnostic trace (--trace, or fc.debug=1 on the kernel command line): one line per call,
/// runtime command and reaped process on standard error, which in the guest is the VM's console.
/// </summary>
internal static class AgentTrace
{
    private static readonly Lock Gate = new();

    /// <summary>Whether lines are written.</summary>
    public static bool Enabled { get; set; }

    public static void Write(string line)
    {
        if (!Enabled)
        {
            return;
        }

        string uptime = Environment.TickCount64.ToString(CultureInfo.InvariantCulture);
        lock (Gate)
        {
            Console.Error.WriteLine($"fc-agent[{uptime}]: {line}");
        }
    }
}
