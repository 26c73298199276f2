using FirecrackerContainerd.Runtime.Tests.Fakes;
using FirecrackerContainerd.Runtime.Tracing;
using FirecrackerContainerd.Runtime.Vm;

namespace FirecrackerContainerd.Runtime.Tests.Tracing;

public sealed class PhaseTraceTests
{
    private readonly RecordingLogger _log = new();

    [Fact]
    public void A_phase_is_timed_from_its_start_and_a_measured_one_is_logged_as_given()
    {
        var trace = new PhaseTrace(_log, enabled: true);

        trace.Phase("task c1", "create", PhaseTrace.Now());
        trace.Measured("vm v1", "guest kernel to /init (guest clock)", 1330);

        string[] lines = [.. _log.Messages];
        Assert.Matches(@"^trace task c1: create [0-9]+\.[0-9] ms$", lines[0]);
        Assert.True(double.Parse(lines[0].Split(' ')[^2], System.Globalization.CultureInfo.InvariantCulture) < 60_000, lines[0]);
        Assert.Equal("trace vm v1: guest kernel to /init (guest clock) 1330.0 ms", lines[1]);
    }

    [Fact]
    public void Off_it_logs_nothing()
    {
        var trace = new PhaseTrace(_log, enabled: false);

        trace.Phase("task c1", "create", PhaseTrace.Now());
        trace.Measured("vm v1", "boot", 1);

        Assert.Empty(_log.Messages);
        Assert.False(PhaseTrace.Off.Enabled);
    }

    [Fact]
    public void The_guests_boot_is_traced_by_its_own_clock_and_unknown_guest_times_are_left_out()
    {
        var trace = new PhaseTrace(_log, enabled: true);

        MicroVm.TraceGuestBoot(trace, "vm v1", PhaseTrace.Now(), initUptimeMs: 1330, agentUptimeMs: 1520);
        MicroVm.TraceGuestBoot(trace, "vm v2", PhaseTrace.Now(), initUptimeMs: 0, agentUptimeMs: 0);

        string[] lines = [.. _log.Messages.Select(m => System.Text.RegularExpressions.Regex.Replace(m, @"answering [0-9.]+ ms$", "answering N ms"))];
        Assert.Equal(
            [
                "trace vm v1: guest kernel to /init (guest clock) 1330.0 ms",
                "trace vm v1: guest /init to agent serving (guest clock) 190.0 ms",
                "trace vm v1: VMM started to agent answering N ms",
                "trace vm v2: VMM started to agent answering N ms",
            ],
            lines);
    }
}
