using System.Globalization;
using System.Reflection;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent;

/// <summary>The agent's own service: who it is and which guest it runs in.</summary>
internal sealed class AgentService
{
    /// <summary>The ttrpc service name.</summary>
    public const string ServiceName = ServiceNames.Agent;

    /// <summary>The variable the guest's /init sets to its own start's uptime (seconds, as /proc/uptime writes it).</summary>
    public const string InitUptimeVariable = "FC_INIT_UPTIME";

    private readonly string _procRoot;
    private readonly IReadOnlyList<string> _ociRuntimes;
    private readonly long _initUptimeMs;
    private readonly long _agentUptimeMs;

    /// <summary>Made just before the agent serves: the guest's uptime now is when it began serving.</summary>
    public AgentService(string procRoot, IReadOnlyList<string> ociRuntimes, string? initUptime)
    {
        _procRoot = procRoot;
        _ociRuntimes = ociRuntimes;
        _initUptimeMs = UptimeMilliseconds(initUptime);
        _agentUptimeMs = UptimeMilliseconds(ReadTrimmed("uptime").Split(' ')[0]);
    }

    public void Register(TtrpcServiceRegistry registry)
    {
        registry.AddUnary<Empty, AgentVersion>(ServiceName, "Version", Empty.Parser, (_, _) => Task.FromResult(Version()));
    }

    public AgentVersion Version()
    {
        var answer = new AgentVersion
        {
            Version = typeof(AgentService).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown",
            KernelRelease = ReadTrimmed("sys/kernel/osrelease"),
            BootId = ReadTrimmed("sys/kernel/random/boot_id"),
            Pid = Environment.ProcessId,
            InitUptimeMs = _initUptimeMs,
            AgentUptimeMs = _agentUptimeMs,
        };
        answer.OciRuntimes.AddRange(_ociRuntimes);
        return answer;
    }

    /// <summary>Seconds with a fraction, as /proc/uptime gives them, in milliseconds; 0 for anything else.</summary>
    internal static long UptimeMilliseconds(string? seconds) =>
        decimal.TryParse(seconds, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal value) && value < 1_000_000_000
            ? (long)(value * 1000)
            : 0;

    private string ReadTrimmed(string relative)
    {
        try
        {
            return File.ReadAllText(Path.Combine(_procRoot, relative)).Trim();
        }
        catch (IOException)
        {
            return string.Empty;
        }
    }
}
