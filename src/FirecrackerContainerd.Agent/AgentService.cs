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

    private readonly string _procRoot;
    private readonly IReadOnlyList<string> _ociRuntimes;

    public AgentService(string procRoot, IReadOnlyList<string> ociRuntimes)
    {
        _procRoot = procRoot;
        _ociRuntimes = ociRuntimes;
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
        };
        answer.OciRuntimes.AddRange(_ociRuntimes);
        return answer;
    }

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
