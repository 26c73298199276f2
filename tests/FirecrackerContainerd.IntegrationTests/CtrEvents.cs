using System.Diagnostics;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>`ctr events` of one namespace, running from construction until <see cref="StopAsync"/>.</summary>
internal sealed class CtrEvents : IDisposable
{
    private readonly Process _ctr;
    private readonly Task<string> _output;

    public CtrEvents(ContainerdFixture containerd, string ns)
    {
        var start = new ProcessStartInfo(ContainerdFixture.CtrBinary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            ArgumentList = { "--address", containerd.Address, "-n", ns, "events" },
        };
        _ctr = Process.Start(start) ?? throw new InvalidOperationException("could not start ctr events");
        _output = _ctr.StandardOutput.ReadToEndAsync();
    }

    /// <summary>Ends `ctr events` and returns the events it printed, one per line.</summary>
    public async Task<string[]> StopAsync()
    {
        Kill();
        await _ctr.WaitForExitAsync();
        return (await _output).Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public void Dispose()
    {
        Kill();
        _ctr.Dispose();
    }

    private void Kill()
    {
        if (!_ctr.HasExited)
        {
            _ctr.Kill();
        }
    }
}
