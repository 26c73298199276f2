using System.Globalization;
using System.Net.Sockets;
using FirecrackerContainerd.Agent.Oci;
using FirecrackerContainerd.Agent.Stdio;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Agent.Tasks;

/// <summary>
/// Brings a container's processes into being: their stdio, then the OCI runtime command that creates the process.
/// With a terminal the command gets a console socket of the agent's own, and the master the runtime sends over it
/// becomes the process's stdio; a process whose terminal never arrives is undone.
/// </summary>
internal sealed class ProcessLauncher(OciRuntime runtime, IStdioTransport transport)
{
    /// <summary>How long after the runtime returned its terminal master may take to arrive (it is sent before the runtime exits).</summary>
    private static readonly TimeSpan ConsoleGrace = TimeSpan.FromSeconds(10);

    private long _consoleSockets;

    /// <summary>Starts listening for the host's stdio connections of a process to be launched.</summary>
    public ProcessIo OpenIo(StdioPaths paths) => ProcessIo.Create(transport, paths);

    /// <summary>Creates container <paramref name="id"/> from <paramref name="bundle"/>; returns its init's pid.</summary>
    /// <exception cref="TaskException">The runtime failed, or handed over no terminal.</exception>
    public Task<int> CreateInitAsync(string id, BundleDir bundle, ProcessIo io, CancellationToken cancellationToken) => RunWithStdioAsync(
        io,
        $"create {id}",
        console => runtime.CreateAsync(id, bundle.RootPath, io.ChildStdio, console, cancellationToken),
        () => runtime.DeleteAsync(id, force: true, CancellationToken.None),
        cancellationToken);

    /// <summary>Runs exec <paramref name="execId"/> of <paramref name="processJson"/> in container <paramref name="containerId"/>; returns its pid.</summary>
    /// <exception cref="TaskException">The runtime failed, or handed over no terminal.</exception>
    public async Task<int> StartExecAsync(
        string containerId, BundleDir bundle, string execId, string processJson, ProcessIo io, CancellationToken cancellationToken)
    {
        string processFile = Path.Combine(bundle.RootPath, $"exec-{execId}.json");
        await File.WriteAllTextAsync(processFile, processJson, cancellationToken).ConfigureAwait(false);
        string pidFile = Path.Combine(bundle.RootPath, $"exec-{execId}.pid");
        return await RunWithStdioAsync(
            io,
            $"exec {execId} in task {containerId}",
            console => runtime.ExecAsync(containerId, processFile, pidFile, io.ChildStdio, console, cancellationToken),
            () => KillExecAsync(pidFile),
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs a runtime command that creates a process; with a terminal, through a console socket whose
    /// master goes to the process's stdio. A process whose terminal never arrives is undone.
    /// </summary>
    private async Task<int> RunWithStdioAsync(ProcessIo io, string what, Func<string?, Task<int>> run, Func<Task> undo, CancellationToken cancellationToken)
    {
        if (!io.IsTerminal)
        {
            try
            {
                return await run(null).ConfigureAwait(false);
            }
            catch (OciRuntimeException e)
            {
                throw new TaskException(TaskError.Unknown, $"{what}: {e.Message}", e);
            }
            finally
            {
                io.CloseChildEnds();
            }
        }

        string path = Path.Combine(runtime.StateRoot, ".console", $"{Interlocked.Increment(ref _consoleSockets)}.sock");
        using ConsoleSocket console = ConsoleSocket.Listen(path);
        using var receiving = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task<PseudoTerminal> master = console.ReceiveMasterAsync(receiving.Token);
        int pid;
        try
        {
            pid = await run(console.Path).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Whatever failed, the pending receive must end before the console socket goes away.
            await receiving.CancelAsync().ConfigureAwait(false);
            await DiscardAsync(master).ConfigureAwait(false);
            if (e is OciRuntimeException runtimeError)
            {
                throw new TaskException(TaskError.Unknown, $"{what}: {runtimeError.Message}", runtimeError);
            }

            throw;
        }
        finally
        {
            io.CloseChildEnds();
        }

        receiving.CancelAfter(ConsoleGrace);
        try
        {
            io.AttachTerminal(await master.ConfigureAwait(false));
            return pid;
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            await UndoAsync(undo, what).ConfigureAwait(false);
            throw new TaskException(TaskError.Unknown, $"{what}: the runtime handed over no terminal on {path}: {e.Message}", e);
        }
    }

    private static async Task DiscardAsync(Task<PseudoTerminal> master)
    {
        try
        {
            (await master.ConfigureAwait(false)).Dispose();
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Nothing was received: nothing to close.
        }
    }

    private static async Task UndoAsync(Func<Task> undo, string what)
    {
        try
        {
            await undo().ConfigureAwait(false);
        }
        catch (Exception e) when (e is OciRuntimeException or IOException)
        {
            AgentTrace.Write($"{what}: undoing the process without a terminal failed: {e.Message}");
        }
    }

    private static async Task KillExecAsync(string pidFile)
    {
        string text = await File.ReadAllTextAsync(pidFile).ConfigureAwait(false);
        if (int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && pid > 0)
        {
            _ = Native.Interop.Kill(pid, 9);
        }
    }
}
