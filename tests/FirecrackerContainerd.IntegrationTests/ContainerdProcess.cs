using System.Diagnostics;
using System.Text;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// One containerd daemon started from a config file: its output collected as its log, ready once <c>ctr version</c>
/// answers on its socket, stopped with SIGTERM (then SIGKILL) and awaited.
/// </summary>
internal sealed class ContainerdProcess
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly StringBuilder _log = new();
    private readonly Lock _logLock = new();
    private Process? _process;

    public ContainerdProcess(string binary, string ctr, string config, string address, string workingDirectory, IReadOnlyDictionary<string, string> environment)
    {
        Binary = binary;
        Ctr = ctr;
        Config = config;
        Address = address;
        WorkingDirectory = workingDirectory;
        Environment = environment;
    }

    public string Binary { get; }

    public string Ctr { get; }

    public string Config { get; }

    public string Address { get; }

    public string WorkingDirectory { get; }

    public IReadOnlyDictionary<string, string> Environment { get; }

    /// <summary>Everything containerd wrote so far.</summary>
    public string Log
    {
        get
        {
            lock (_logLock)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>Appends a marker line to the log (e.g. a restart), so a failure's log shows when it happened.</summary>
    public void Note(string line) => Append(line);

    public async Task StartAsync()
    {
        var info = new ProcessStartInfo(Binary)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = WorkingDirectory,
        };
        info.ArgumentList.Add("--config");
        info.ArgumentList.Add(Config);
        foreach ((string name, string value) in Environment)
        {
            info.Environment[name] = value;
        }

        _process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {Binary}");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"containerd exited with code {_process.ExitCode} at start-up:\n{Log}");
            }

            // Both sockets: shims publish their events on the ttrpc one (the gRPC address plus ".ttrpc").
            if (File.Exists(Address) && File.Exists(Address + ".ttrpc")
                && (await ProcessRunner.RunAsync(Ctr, ["--address", Address, "version"], TimeSpan.FromSeconds(10))).ExitCode == 0)
            {
                return;
            }

            if (clock.Elapsed > StartTimeout)
            {
                throw new TimeoutException($"containerd did not answer on {Address} within {StartTimeout.TotalSeconds:0} s:\n{Log}");
            }

            await Task.Delay(100);
        }
    }

    public async Task StopAsync()
    {
        if (_process is not { } containerd)
        {
            return;
        }

        if (!containerd.HasExited)
        {
            _ = Interop.Kill(containerd.Id, Interop.SIGTERM);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await containerd.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                containerd.Kill(entireProcessTree: true);
                await containerd.WaitForExitAsync();
            }
        }

        containerd.Dispose();
        _process = null;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_logLock)
        {
            _log.AppendLine(line);
        }
    }
}
