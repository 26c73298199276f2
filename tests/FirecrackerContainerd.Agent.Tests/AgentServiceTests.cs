using FirecrackerContainerd.Protos.Agent;

namespace FirecrackerContainerd.Agent.Tests;

public sealed class AgentServiceTests : IDisposable
{
    private readonly string _proc = Directory.CreateTempSubdirectory("fc-agent-proc-").FullName;

    public void Dispose() => Directory.Delete(_proc, recursive: true);

    [Fact]
    public void Version_reports_the_guest_uptime_at_init_and_when_the_agent_began_serving()
    {
        File.WriteAllText(Path.Combine(_proc, "uptime"), "1.52 2.80\n");

        AgentVersion version = new AgentService(_proc, ["crun"], "1.33").Version();

        Assert.Equal(1330, version.InitUptimeMs);
        Assert.Equal(1520, version.AgentUptimeMs);
    }

    [Fact]
    public void Boot_times_that_cannot_be_read_are_reported_as_unknown()
    {
        AgentVersion version = new AgentService(_proc, ["crun"], null).Version();

        Assert.Equal(0, version.InitUptimeMs);
        Assert.Equal(0, version.AgentUptimeMs);
    }

    [Theory]
    [InlineData("1.33", 1330)]
    [InlineData("0.07", 70)]
    [InlineData("", 0)]
    [InlineData("-1.0", 0)]
    [InlineData("1e9", 0)]
    [InlineData("99999999999", 0)]
    [InlineData("one", 0)]
    public void Uptime_seconds_become_milliseconds(string seconds, long expected) =>
        Assert.Equal(expected, AgentService.UptimeMilliseconds(seconds));
}
