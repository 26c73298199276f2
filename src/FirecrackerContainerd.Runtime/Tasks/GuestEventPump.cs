using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.Events;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Shim.Events;
using FirecrackerContainerd.Ttrpc;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime.Tasks;

/// <summary>
/// Carries the guest agent's task events to containerd: each one is read by long poll, checked against the task table
/// (an event about a process this shim does not know is dropped) and republished under this shim's namespace. An exit
/// is recorded for Wait and State, and forwarded only once the process's output has reached containerd.
/// </summary>
internal sealed partial class GuestEventPump(IGuestAgent agent, TaskTable tasks, IEventPublisher events, ILogger logger)
{
    /// <summary>How long an exit waits for the process's output to reach containerd before it is reported anyway.</summary>
    private static readonly TimeSpan OutputGrace = TimeSpan.FromSeconds(10);

    /// <summary>Pumps until <paramref name="stopping"/> is cancelled or the agent's connection ends.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            Envelope envelope;
            try
            {
                envelope = await agent.NextEventAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception e) when (e is TtrpcException or OperationCanceledException or IOException)
            {
                return; // the agent connection is gone; the VM's watcher reports the exits
            }
            catch (InvalidDataException e)
            {
                LogBadEvent(logger, e.Message);
                continue;
            }

            try
            {
                await RepublishAsync(envelope, stopping).ConfigureAwait(false);
            }
            catch (InvalidProtocolBufferException e)
            {
                LogBadEvent(logger, e.Message);
            }
        }
    }

    private async Task RepublishAsync(Envelope envelope, CancellationToken stopping)
    {
        string type = envelope.Event.TypeUrl["containerd.events.".Length..];
        IMessage? message = type switch
        {
            nameof(TaskStart) => Known(TaskStart.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskExecAdded) => Known(TaskExecAdded.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskExecStarted) => Known(TaskExecStarted.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskPaused) => Known(TaskPaused.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskResumed) => Known(TaskResumed.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskOOM) => Known(TaskOOM.Parser.ParseFrom(envelope.Event.Value), m => m.ContainerId),
            nameof(TaskExit) => await OnExitAsync(TaskExit.Parser.ParseFrom(envelope.Event.Value)).ConfigureAwait(false),
            _ => null, // TaskCreate and TaskDelete are published by the shim itself
        };
        if (message is not null)
        {
            await events.PublishAsync(envelope.Topic, message, stopping).ConfigureAwait(false);
        }
    }

    private T? Known<T>(T message, Func<T, string> containerId)
        where T : class, IMessage =>
        tasks.TryFind(containerId(message)) is null ? null : message;

    private async Task<TaskExit?> OnExitAsync(TaskExit exit)
    {
        ProcessRecord? process = tasks.ProcessOf(exit.ContainerId, exit.Id);
        LogGuestExit(logger, exit.ContainerId, exit.Id, exit.ExitStatus, process is not null);
        if (process is null || exit.ExitStatus > 255)
        {
            return null;
        }

        // containerd closes the task's IO when it sees the exit: let the output reach it first.
        await Task.WhenAny(process.Io.OutputDone, Task.Delay(OutputGrace)).ConfigureAwait(false);
        process.TryExit(exit.ExitStatus, exit.ExitedAt ?? Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow));
        return exit;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "the guest reports exit of {ContainerId}/{Id} with status {Status} (known: {Known})")]
    private static partial void LogGuestExit(ILogger logger, string containerId, string id, uint status, bool known);

    [LoggerMessage(Level = LogLevel.Warning, Message = "dropping an event from the guest: {Reason}")]
    private static partial void LogBadEvent(ILogger logger, string reason);
}
