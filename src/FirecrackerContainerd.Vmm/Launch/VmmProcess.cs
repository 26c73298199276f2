using System.Diagnostics;
using System.Text;
using FirecrackerContainerd.Vmm.Machine;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Vmm.Launch;

/// <summary>A VMM process we own: started with a known parent, signalled by pid, awaited, its exit reported once.</summary>
/// <remarks>
/// PR_SET_PDEATHSIG fires when the parent <em>thread</em> ends, not the parent process, and .NET
/// forks from the calling thread. A thread-pool thread may retire at any time and would take the
/// VMM with it, so the process is started from a dedicated thread that lives exactly as long as the
/// child: it starts it, then waits for its exit and reports it. Standard input is closed at once (or, with
/// <see cref="VmmLaunch.HoldStandardInput"/>, when the process is disposed: until then it is the child's sign that we live);
/// standard output and error (the guest's serial console among them) are forwarded to the logger
/// in bounded lines, because the guest is untrusted and may print without end.
/// </remarks>
internal sealed partial class VmmProcess : IAsyncDisposable
{
    /// <summary>Output lines longer than this are cut, so a guest console cannot grow our memory.</summary>
    private const int MaxOutputLineChars = 4096;

    /// <summary>How many of the last output lines are kept for error messages, and how long each may be there.</summary>
    private const int TailLines = 64;
    private const int TailLineChars = 256;

    private readonly string _vmId;
    private readonly Process _process;
    private readonly Task<VmExit> _exited;
    private readonly Task _outputPumps;
    private readonly Queue<string> _tail = new();
    private readonly StreamWriter? _heldInput;
    private int _killed;

    private VmmProcess(string vmId, Process process, Task<VmExit> exited, StreamWriter? heldInput, ILogger logger)
    {
        _vmId = vmId;
        _process = process;
        _exited = exited;
        _heldInput = heldInput;
        Pid = process.Id;
        _outputPumps = Task.WhenAll(
            PumpAsync(process.StandardOutput.BaseStream, "stdout", logger),
            PumpAsync(process.StandardError.BaseStream, "stderr", logger));
    }

    /// <summary>The VMM's process id.</summary>
    public int Pid { get; }

    /// <summary>Completes once, when the process has exited and been reaped.</summary>
    public Task<VmExit> Exited => _exited;

    /// <summary>
    /// The last lines of standard output and error (the guest's serial console among them), oldest first, each cut
    /// to 256 characters. They come from the guest: untrusted text, to be quoted, never parsed for decisions.
    /// </summary>
    public IReadOnlyList<string> RecentOutput()
    {
        lock (_tail)
        {
            return [.. _tail];
        }
    }

    /// <summary>Starts the process described by <paramref name="launch"/> for machine <paramref name="vmId"/>.</summary>
    public static async Task<VmmProcess> StartAsync(string vmId, VmmLaunch launch, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(launch);
        ArgumentNullException.ThrowIfNull(logger);
        var argv = launch.CommandLine();
        var info = new ProcessStartInfo(argv[0])
        {
            WorkingDirectory = launch.WorkingDirectory,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in argv.AsSpan()[1..])
        {
            info.ArgumentList.Add(arg);
        }

        var started = new TaskCompletionSource<Process>(TaskCreationOptions.RunContinuationsAsynchronously);
        var exited = new TaskCompletionSource<VmExit>(TaskCreationOptions.RunContinuationsAsynchronously);
        var ownerReady = new TaskCompletionSource<VmmProcess>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() => OwnChild(vmId, info, launch, started, exited, ownerReady.Task))
        {
            IsBackground = true,
            Name = "vmm " + vmId,
        };
        thread.Start();
        Process process;
        try
        {
            process = await started.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new IOException($"start VMM for vm \"{vmId}\": {string.Join(' ', argv)} in {launch.WorkingDirectory}: {e.Message}", e);
        }

        StreamWriter? heldInput = null;
        if (launch.HoldStandardInput)
        {
            heldInput = process.StandardInput;
        }
        else
        {
            process.StandardInput.Close();
        }

        var owner = new VmmProcess(vmId, process, exited.Task, heldInput, logger);
        ownerReady.SetResult(owner);
        if (logger.IsEnabled(LogLevel.Information))
        {
            var commandLine = string.Join(' ', argv);
            LogStarted(logger, vmId, owner.Pid, commandLine);
        }

        return owner;
    }

    /// <summary>Sends <paramref name="signal"/> by pid; false when the process has already exited.</summary>
    public bool Signal(int signal) => !_exited.IsCompleted && Interop.Kill(Pid, signal);

    /// <summary>Kills the process (SIGKILL by pid) unless it has exited, and waits for the exit to be observed.</summary>
    public async Task<VmExit> KillAsync()
    {
        if (!_exited.IsCompleted)
        {
            Interlocked.Exchange(ref _killed, 1);
            try
            {
                _process.Kill(entireProcessTree: false);
            }
            catch (InvalidOperationException)
            {
                // It exited between the check and the kill; the exit task reports it.
            }
        }

        return await _exited.ConfigureAwait(false);
    }

    /// <summary>Waits for the exit at most <paramref name="timeout"/>; null when the process is still running.</summary>
    public async Task<VmExit?> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            return await _exited.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>Kills the process if it still runs and releases it.</summary>
    public async ValueTask DisposeAsync()
    {
        await KillAsync().ConfigureAwait(false);
        _heldInput?.Dispose();
        await _outputPumps.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _process.Dispose();
    }

    private static void OwnChild(
        string vmId, ProcessStartInfo info, VmmLaunch launch, TaskCompletionSource<Process> started, TaskCompletionSource<VmExit> exited,
        Task<VmmProcess> owner)
    {
        Process process;
        try
        {
            // .NET forks from the calling thread, and a child starts in its thread's network namespace: this thread,
            // which only ever starts and awaits this child, enters the VMM's namespace and stays there.
            if (launch.NetworkNamespace is not null)
            {
                Interop.EnterNetworkNamespace(launch.NetworkNamespace);
            }

            // Likewise for the pid namespace: its children are born into the new one, and this thread starts just one.
            if (launch.NewPidNamespace)
            {
                Interop.UnsharePidNamespace();
            }

            process = Process.Start(info) ?? throw new InvalidOperationException("no process was started");
        }
        catch (Exception e)
        {
            started.SetException(e);
            return;
        }

        var pid = process.Id;
        started.SetResult(process);

        // This thread is the child's parent for PR_SET_PDEATHSIG: it must stay alive until the child exits.
        process.WaitForExit();
        var killed = owner.IsCompletedSuccessfully && Volatile.Read(ref owner.Result._killed) == 1;
        exited.SetResult(new VmExit(vmId, pid, process.ExitCode, killed, DateTimeOffset.UtcNow));
    }

    private async Task PumpAsync(Stream stream, string name, ILogger logger)
    {
        var decoder = Encoding.UTF8.GetDecoder();
        var bytes = new byte[4096];
        var chars = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
        var line = new StringBuilder();
        int n;
        while ((n = await stream.ReadAsync(bytes).ConfigureAwait(false)) > 0)
        {
            var count = decoder.GetChars(bytes, 0, n, chars, 0);
            foreach (var c in chars.AsSpan(0, count))
            {
                if (c == '\n')
                {
                    Keep(line);
                    if (logger.IsEnabled(LogLevel.Debug))
                    {
                        var text = line.ToString();
                        LogOutput(logger, _vmId, name, text);
                    }

                    line.Clear();
                }
                else if (line.Length < MaxOutputLineChars)
                {
                    line.Append(c);
                }
            }
        }

        if (line.Length > 0)
        {
            Keep(line);
            if (logger.IsEnabled(LogLevel.Debug))
            {
                var text = line.ToString();
                LogOutput(logger, _vmId, name, text);
            }
        }
    }

    private void Keep(StringBuilder line)
    {
        string text = line.ToString(0, Math.Min(line.Length, TailLineChars)).TrimEnd('\r');
        lock (_tail)
        {
            if (_tail.Count == TailLines)
            {
                _tail.Dequeue();
            }

            _tail.Enqueue(text);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "vm {VmId}: started VMM pid {Pid}: {CommandLine}")]
    private static partial void LogStarted(ILogger logger, string vmId, int pid, string commandLine);

    [LoggerMessage(Level = LogLevel.Debug, Message = "vm {VmId} VMM {Stream}: {Line}")]
    private static partial void LogOutput(ILogger logger, string vmId, string stream, string line);
}
