using System.Text.Json;
using FirecrackerContainerd.Vmm.Tests.Contract;

namespace FirecrackerContainerd.Vmm.Tests.FakeFirecracker;

/// <summary>
/// Entry point of the test assembly when it is run as a fake <c>firecracker</c>: it serves the
/// contract-checking API server on <c>--api-sock</c> (relative to its working directory, as the real
/// one), appends every request and violation to the <c>--record</c> file as JSON lines, and exits
/// with status 0 on SendCtrlAltDel, unless <c>--stubborn</c>, in which case only a signal ends it.
/// </summary>
public static class Program
{
    /// <summary>The first argument that selects the fake.</summary>
    public const string Verb = "fake-firecracker";

    /// <summary>Runs the fake; returns its exit status.</summary>
    public static async Task<int> Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Length == 0 || args[0] != Verb)
        {
            await Console.Error.WriteLineAsync($"this assembly holds tests; run it as \"{Verb} --api-sock <path> [--record <file>] [--stubborn]\"");
            return 2;
        }

        string? socket = null;
        string? record = null;
        var stubborn = false;
        for (var i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--api-sock": socket = args[++i]; break;
                case "--record": record = args[++i]; break;
                case "--stubborn": stubborn = true; break;
                default: break; // Firecracker ignores arguments it does not need here; so does the fake.
            }
        }

        if (socket is null)
        {
            await Console.Error.WriteLineAsync("--api-sock is required");
            return 2;
        }

        var exit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var recordLock = new object();
        await using var server = new FirecrackerApiServer(
            socket,
            SwaggerContract.LoadDefault(),
            Environment.CurrentDirectory,
            requestHandled: (request, violations) =>
            {
                if (record is null)
                {
                    return;
                }

                var line = JsonSerializer.Serialize(new { request.Method, request.Path, request.Body, request.Status, Violations = violations });
                lock (recordLock)
                {
                    File.AppendAllText(record, line + "\n");
                }
            },
            actionHandled: action =>
            {
                if (action == "SendCtrlAltDel" && !stubborn)
                {
                    exit.TrySetResult();
                }
            });
        await Console.Out.WriteLineAsync($"fake firecracker listening on {socket}");
        await exit.Task;
        return 0;
    }
}
