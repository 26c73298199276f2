using FirecrackerContainerd.Ttrpc;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime;

/// <summary>
/// A step of undoing or ending something (unmounting in the guest, stopping a VM, publishing an exit) that must not
/// stop the steps after it: its failure is logged and the caller carries on.
/// </summary>
internal static partial class CleanupStep
{
    /// <summary>Runs <paramref name="step"/>; the failures a VM or the guest can cause are logged, not thrown.</summary>
    public static async Task RunAsync(Func<Task> step, ILogger logger)
    {
        try
        {
            await step().ConfigureAwait(false);
        }
        catch (Exception e) when (e is TtrpcException or IOException or InvalidOperationException or OperationCanceledException or TimeoutException)
        {
            LogIgnored(logger, $"{e.GetType().Name}: {e.Message}\n{e.StackTrace}");
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "clean-up step failed: {Reason}")]
    private static partial void LogIgnored(ILogger logger, string reason);
}
