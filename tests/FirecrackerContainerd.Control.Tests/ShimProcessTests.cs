using System.Diagnostics;
using System.Net.Sockets;
using FirecrackerContainerd.Control.Shims;

namespace FirecrackerContainerd.Control.Tests;

/// <summary>How the daemon tells a shim process that runs from one that has exited.</summary>
public sealed class ShimProcessTests : IDisposable
{
    // The main thread exits alone (pthread_exit), so the process's leader is a zombie while another thread still
    // listens on a socket: the state a killed multithreaded shim passes through while its threads exit.
    private const string ZombieLeaderScript = """
        import ctypes, socket, sys, threading, time
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(sys.argv[1])
        server.listen(8)
        threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()
        print("ready", flush=True)
        ctypes.CDLL(None).pthread_exit(None)
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("fcproc-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_zombie_leader_whose_other_threads_still_hold_the_socket_is_running_until_they_are_gone()
    {
        string socketPath = Path.Combine(_dir, "s.sock");
        var info = new ProcessStartInfo("python3") { RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(ZombieLeaderScript);
        info.ArgumentList.Add(socketPath);
        using var child = Process.Start(info)!;
        try
        {
            Assert.Equal("ready", await child.StandardOutput.ReadLineAsync());
            var clock = Stopwatch.StartNew();
            while (StateOf(child.Id) != 'Z')
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the leader thread did not exit");
                await Task.Delay(20);
            }

            var process = ShimProcess.Find(child.Id);

            Assert.True(process.IsRunning);
            Assert.True(Connects(socketPath), "the socket should still accept while a thread lives");

            child.Kill();
            Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None));
            Assert.False(process.IsRunning);
            Assert.False(Connects(socketPath), "the socket accepted after the process was reported exited");
        }
        finally
        {
            child.Kill();
        }
    }

    [Fact]
    public void A_pid_reused_by_another_process_is_not_the_shim()
    {
        var self = ShimProcess.Find(Environment.ProcessId);
        Assert.True(self.IsRunning);
        Assert.False((self with { StartTicks = self.StartTicks + 1 }).IsRunning);
    }

    private static char? StateOf(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2];
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static bool Connects(string path)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
