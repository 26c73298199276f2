using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// Long-running containers in microVMs driven through containerd's task commands: exec, kill and wait,
/// pause and resume, several containers sharing one VM, a VMM that dies, and a containerd that restarts.
/// </summary>
[Collection(PrivateContainerd.Name)]
[Trait("Category", "ContainerRun")]
public sealed class TaskLifecycleInVmTests(ContainerdFixture containerd, ITestOutputHelper output) : IAsyncLifetime, IDisposable
{
    private const string Namespace = "fclife";
    private const string VmIdAnnotation = "aws.firecracker.vm.id";
    private static readonly TimeSpan StateChange = TimeSpan.FromSeconds(60);
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(4));

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => containerd.RemoveLeftoversAsync();

    public void Dispose() => _timeout.Dispose();

    [Fact]
    public async Task Exec_into_a_running_container_returns_its_output_stdin_echo_and_exit_code()
    {
        const string id = "vm-exec";
        await InDetachedContainerAsync(id, ["sleep", "600"], async () =>
        {
            CommandResult exec = await ExecAsync(id, "e1", null, "sh", "-c", "echo from exec; cat /proc/1/cmdline; exit 4");
            Assert.True(exec.ExitCode == 4, containerd.Describe(exec));
            Assert.Equal("from exec\nsleep\0600\0", exec.Stdout);

            CommandResult echo = await ExecAsync(id, "e2", Encoding.UTF8.GetBytes("typed into exec\n"), "cat");
            Assert.True(echo.ExitCode == 0, containerd.Describe(echo));
            Assert.Equal("typed into exec\n", echo.Stdout);

            Assert.Equal("RUNNING", await containerd.TaskStatusAsync(Namespace, id));
            await KillAndRemoveAsync(id);
        });
    }

    [Fact]
    public async Task Kill_with_SIGTERM_reaches_the_containers_handler_and_ctr_run_exits_with_its_status()
    {
        const string id = "vm-term";
        containerd.NoteTaskId(Namespace, id);
        await containerd.RequireGuestAsync(_timeout.Token);
        await containerd.ImportBusyboxImageAsync(Namespace);
        Task<CommandResult> run = containerd.CtrWithInputAsync(Namespace, null,
            ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", BusyboxImage.Name, id,
             "sh", "-c", "trap 'echo got TERM; exit 42' TERM; while true; do sleep 1; done"]);
        try
        {
            Assert.True(await containerd.TaskReachesAsync(Namespace, id, "RUNNING", StateChange), $"the task never ran\n{containerd.ShimLog()}");

            // The shell installs its trap a moment after the task runs; until then PID 1 ignores SIGTERM, so repeat it.
            var clock = Stopwatch.StartNew();
            while (!run.IsCompleted && clock.Elapsed < StateChange)
            {
                await containerd.CtrAsync(Namespace, "task", "kill", "--signal", "SIGTERM", id);
                await Task.WhenAny(run, Task.Delay(2000));
            }

            CommandResult result = await run;
            Assert.True(result.ExitCode == 42, containerd.Describe(result));
            Assert.Contains("got TERM", result.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            await containerd.RemoveContainerAsync(Namespace, id);
        }

        await containerd.AssertNothingLeftAsync(Namespace, id, id);
    }

    [Fact]
    public async Task Ctr_task_attach_after_a_detached_run_receives_the_output_without_gaps()
    {
        const string id = "vm-attach";
        await RunDetachedAsync(id, null, "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done");
        try
        {
            // Nobody reads the output until the attach; it must wait in the FIFO, not be dropped or fail.
            await Task.Delay(TimeSpan.FromSeconds(2));
            var attach = new ProcessStartInfo(ContainerdFixture.CtrBinary)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                UseShellExecute = false,
                ArgumentList = { "--address", containerd.Address, "-n", Namespace, "task", "attach", id },
            };
            var ticks = new List<int>();
            string attachErrors;
            using (Process attached = Process.Start(attach) ?? throw new InvalidOperationException("could not start ctr task attach"))
            {
                Task<string> errors = attached.StandardError.ReadToEndAsync();
                using var enough = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                try
                {
                    while (ticks.Count < 10 && await attached.StandardOutput.ReadLineAsync(enough.Token) is { } line)
                    {
                        if (line.StartsWith("tick ", StringComparison.Ordinal) && int.TryParse(line.AsSpan(5), out int n))
                        {
                            ticks.Add(n);
                        }
                    }
                }
                catch (OperationCanceledException)
                {
                }
                finally
                {
                    attached.Kill();
                    await attached.WaitForExitAsync();
                }

                attachErrors = await errors;
            }

            Assert.True(ticks.Count >= 10, $"ctr task attach read {ticks.Count} ticks: {string.Join(", ", ticks)}\nits stderr: {attachErrors}\n{containerd.ShimLog()}");
            Assert.Equal(Enumerable.Range(ticks[0], ticks.Count), ticks);
            await KillAndRemoveAsync(id);
        }
        finally
        {
            await containerd.RemoveContainerAsync(Namespace, id);
        }

        await containerd.AssertNothingLeftAsync(Namespace, id, id);
    }

    [Fact]
    public async Task Pause_and_resume_show_in_the_task_status()
    {
        const string id = "vm-pause";
        await InDetachedContainerAsync(id, ["sleep", "600"], async () =>
        {
            CommandResult pause = await containerd.CtrAsync(Namespace, "task", "pause", id);
            Assert.True(pause.ExitCode == 0, containerd.Describe(pause));
            Assert.Equal("PAUSED", await containerd.TaskStatusAsync(Namespace, id));

            CommandResult resume = await containerd.CtrAsync(Namespace, "task", "resume", id);
            Assert.True(resume.ExitCode == 0, containerd.Describe(resume));
            Assert.Equal("RUNNING", await containerd.TaskStatusAsync(Namespace, id));

            // Still alive after the freeze: an exec answers.
            CommandResult exec = await ExecAsync(id, "after-resume", null, "echo", "thawed");
            Assert.True(exec.ExitCode == 0, containerd.Describe(exec));
            Assert.Equal("thawed\n", exec.Stdout);
            await KillAndRemoveAsync(id);
        });
    }

    [Fact]
    public async Task Task_metrics_come_from_the_containers_cgroup_in_the_guest()
    {
        const string id = "vm-metrics";
        await InDetachedContainerAsync(id, ["sh", "-c", "sleep 600 & sleep 600 & wait"], async () =>
        {
            // sh and its two sleeps (once sh has started them); the guest's own processes are not in the container's cgroup.
            var clock = Stopwatch.StartNew();
            CommandResult metrics;
            int pids;
            do
            {
                metrics = await containerd.CtrAsync(Namespace, "task", "metrics", "--format", "json", id);
                Assert.True(metrics.ExitCode == 0, containerd.Describe(metrics));
                using var sample = System.Text.Json.JsonDocument.Parse(metrics.Stdout);
                pids = sample.RootElement.GetProperty("pids").GetProperty("current").GetInt32();
            }
            while (pids < 3 && clock.Elapsed < StateChange);

            Assert.Equal(3, pids);
            using var json = System.Text.Json.JsonDocument.Parse(metrics.Stdout);
            System.Text.Json.JsonElement root = json.RootElement;
            Assert.True(root.GetProperty("memory").GetProperty("usage").GetInt64() > 0, metrics.Stdout);
            Assert.True(root.GetProperty("cpu").GetProperty("usage_usec").GetInt64() > 0, metrics.Stdout);
            await KillAndRemoveAsync(id);
        });
    }

    [Fact]
    public async Task The_vmm_runs_under_its_seccomp_filter_with_no_new_privs_and_still_serves_drives_and_exec()
    {
        const string id = "vm-seccomp";
        string vmDir = Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + id);
        await RunDetachedAsync(id, id, "sleep", "600");
        try
        {
            int qemu = Assert.Single(ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));
            string[] status = await File.ReadAllLinesAsync($"/proc/{qemu}/status");
            Assert.Contains("Seccomp:\t2", status);
            Assert.Contains("NoNewPrivs:\t1", status);

            // The container's rootfs drive was patched in after the filter was installed; exec reaches the guest.
            CommandResult exec = await ExecAsync(id, "alive", null, "cat", "/proc/self/status");
            Assert.True(exec.ExitCode == 0, containerd.Describe(exec));
            await KillAndRemoveAsync(id);
        }
        finally
        {
            await containerd.RemoveContainerAsync(Namespace, id);
        }

        await containerd.AssertNothingLeftAsync(Namespace, id, id);
    }

    [Fact]
    public async Task Containers_with_the_same_vm_id_share_one_guest_and_one_shim()
    {
        const string vmId = "vm-shared";
        string[] ids = ["vm-shared-1", "vm-shared-2"];
        string vmDir = Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + vmId);
        await RunDetachedAsync(ids[0], vmId, "sleep", "600");
        try
        {
            await RunDetachedAsync(ids[1], vmId, "sleep", "600");
            CommandResult first = await ExecAsync(ids[0], "boot", null, "cat", "/proc/sys/kernel/random/boot_id");
            CommandResult second = await ExecAsync(ids[1], "boot", null, "cat", "/proc/sys/kernel/random/boot_id");
            Assert.True(first.ExitCode == 0 && second.ExitCode == 0, containerd.Describe(first) + containerd.Describe(second));
            Assert.Matches("^[0-9a-f-]{36}\n$", first.Stdout);
            Assert.Equal(first.Stdout, second.Stdout);
            Assert.Single(containerd.ShimProcesses([vmId, .. ids]));
            Assert.Single(ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));

            // The VM outlives the first container and serves the second.
            await KillAndRemoveAsync(ids[0]);
            Assert.Single(ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));
            CommandResult still = await ExecAsync(ids[1], "still", null, "cat", "/proc/sys/kernel/random/boot_id");
            Assert.Equal(first.Stdout, still.Stdout);
            await KillAndRemoveAsync(ids[1]);
        }
        finally
        {
            foreach (string id in ids)
            {
                await containerd.RemoveContainerAsync(Namespace, id);
            }
        }

        await containerd.AssertNothingLeftAsync(Namespace, vmId, ids);
    }

    [Fact]
    public async Task The_OOM_killer_takes_the_agent_last_while_containers_and_execs_get_the_default_score()
    {
        const string vmId = "vm-oom-score";
        const string id = "vm-oom-score-1";
        const string probe = "vm-oom-score-probe";
        await RunDetachedAsync(id, vmId, "sleep", "600");
        try
        {
            CommandResult exec = await ExecAsync(id, "score", null, "cat", "/proc/self/oom_score_adj", "/proc/1/oom_score_adj");
            Assert.True(exec.ExitCode == 0, containerd.Describe(exec));
            Assert.Equal("0\n0\n", exec.Stdout);

            // A container in the guest's own pid namespace sees the agent (the pattern does not match itself).
            containerd.NoteTaskId(Namespace, probe);
            CommandResult agent = await containerd.CtrWithInputAsync(Namespace, null,
                ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"{VmIdAnnotation}={vmId}",
                 "--with-ns", "pid:/proc/1/ns/pid", BusyboxImage.Name, probe, "sh", "-c",
                 "for p in /proc/[0-9]*; do if grep -q '[f]c-agent' $p/cmdline 2>/dev/null; then cat $p/oom_score_adj; fi; done"]);
            Assert.True(agent.ExitCode == 0, containerd.Describe(agent));
            Assert.Equal("-999\n", agent.Stdout);
            await KillAndRemoveAsync(id);
        }
        finally
        {
            await containerd.RemoveContainerAsync(Namespace, probe);
            await containerd.RemoveContainerAsync(Namespace, id);
        }

        await containerd.AssertNothingLeftAsync(Namespace, vmId, id, probe);
    }

    [Fact]
    public async Task A_killed_VMM_turns_into_a_task_exit_and_the_shim_cleans_up()
    {
        const string id = "vm-vmmkill";
        string vmDir = Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + id);
        await InDetachedContainerAsync(id, ["sleep", "600"], async () =>
        {
            int qemu = Assert.Single(ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));
            Assert.Equal(0, Interop.Kill(qemu, 9));
            Assert.True(await containerd.TaskReachesAsync(Namespace, id, "STOPPED", StateChange), $"containerd never saw the task stop\n{containerd.ShimLog()}");

            // A VM killed under the task reads as SIGKILL.
            AssertExitStatus(137, await containerd.CtrAsync(Namespace, "task", "rm", id));
            CommandResult crm = await containerd.CtrAsync(Namespace, "container", "rm", id);
            Assert.True(crm.ExitCode == 0, containerd.Describe(crm));
        });
    }

    [Fact]
    public async Task A_killed_shim_takes_its_VMM_with_it_and_containerd_sees_the_task_stop()
    {
        const string id = "vm-shimkill";
        string vmDir = Path.Combine(containerd.ShimBaseDirectory, Namespace + "#" + id);
        await InDetachedContainerAsync(id, ["sleep", "600"], async () =>
        {
            int shim = Assert.Single(containerd.ShimProcesses(id));
            Assert.Single(ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir));
            Assert.Equal(0, Interop.Kill(shim, 9));

            Assert.True(await Eventually.HoldsAsync(() => ProcessRunner.FindProcesses("qemu-system-x86_64", vmDir).Count == 0, TimeSpan.FromSeconds(30)),
                "the VMM outlived its killed shim");
            // containerd cleans up after a shim that disconnects: the task reads as stopped, then goes.
            Assert.True(await containerd.TaskReachesAsync(Namespace, id, s => s is null or "STOPPED", StateChange),
                $"containerd still says {await containerd.TaskStatusAsync(Namespace, id)}\n{containerd.ShimLog()}");
            await containerd.CtrAsync(Namespace, "task", "rm", id);
            CommandResult crm = await containerd.CtrAsync(Namespace, "container", "rm", id);
            Assert.True(crm.ExitCode == 0, containerd.Describe(crm));
        });
    }

    [Fact]
    public async Task After_containerd_restarts_the_task_is_still_listed_and_can_be_killed()
    {
        const string id = "vm-restart";
        await InDetachedContainerAsync(id, ["sleep", "600"], async () =>
        {
            int shim = Assert.Single(containerd.ShimProcesses(id));
            await containerd.RestartAsync();

            Assert.Equal([shim], containerd.ShimProcesses(id));
            Assert.Equal("RUNNING", await containerd.TaskStatusAsync(Namespace, id));
            CommandResult exec = await ExecAsync(id, "after-restart", null, "echo", "still here");
            Assert.True(exec.ExitCode == 0, containerd.Describe(exec));
            Assert.Equal("still here\n", exec.Stdout);
            await KillAndRemoveAsync(id);
        });
    }

    /// <summary>
    /// Runs <paramref name="test"/> against a detached container in a VM of its own, then removes the
    /// container whatever happened and checks that the VM left nothing on the host.
    /// </summary>
    private async Task InDetachedContainerAsync(string id, string[] command, Func<Task> test)
    {
        await RunDetachedAsync(id, null, command);
        try
        {
            await test();
        }
        finally
        {
            await containerd.RemoveContainerAsync(Namespace, id);
        }

        await containerd.AssertNothingLeftAsync(Namespace, id, id);
    }

    /// <summary>Starts a detached container (a new VM, or <paramref name="vmId"/>'s) and waits until it runs.</summary>
    private async Task RunDetachedAsync(string id, string? vmId, params string[] command)
    {
        containerd.NoteTaskId(Namespace, id);
        await containerd.RequireGuestAsync(_timeout.Token);
        await containerd.ImportBusyboxImageAsync(Namespace);
        string[] annotation = vmId is null ? [] : ["--annotation", $"{VmIdAnnotation}={vmId}"];
        var clock = Stopwatch.StartNew();
        CommandResult run = await containerd.CtrWithInputAsync(Namespace, null,
            ["run", "-d", "--runtime", "aws.firecracker", "--snapshotter", "native", .. annotation, BusyboxImage.Name, id, .. command]);
        output.WriteLine($"ctr run -d {id}: exit {run.ExitCode} after {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(run.ExitCode == 0, containerd.Describe(run));
        Assert.True(await containerd.TaskReachesAsync(Namespace, id, "RUNNING", StateChange), $"{id} never ran\n{containerd.ShimLog()}");
    }

    private Task<CommandResult> ExecAsync(string id, string execId, byte[]? stdin, params string[] command) =>
        containerd.CtrWithInputAsync(Namespace, stdin, ["task", "exec", "--exec-id", execId, id, .. command]);

    /// <summary>SIGKILL, wait for the stop, delete the task (whose status must say SIGKILL) and the container.</summary>
    private async Task KillAndRemoveAsync(string id)
    {
        CommandResult kill = await containerd.CtrAsync(Namespace, "task", "kill", "--signal", "SIGKILL", id);
        Assert.True(kill.ExitCode == 0, containerd.Describe(kill));
        Assert.True(await containerd.TaskReachesAsync(Namespace, id, "STOPPED", StateChange), $"{id} never stopped\n{containerd.ShimLog()}");
        AssertExitStatus(137, await containerd.CtrAsync(Namespace, "task", "rm", id));
        CommandResult crm = await containerd.CtrAsync(Namespace, "container", "rm", id);
        Assert.True(crm.ExitCode == 0, containerd.Describe(crm));
    }

    /// <summary>`ctr task rm` reports the task's exit status: ctr 1.6 as a warning, later versions as its own exit code.</summary>
    private void AssertExitStatus(int status, CommandResult rm)
    {
        bool reported = rm.ExitCode == status ||
            (rm.ExitCode == 0 && rm.Stderr.Contains($"exit code {status}", StringComparison.Ordinal));
        Assert.True(reported, $"expected exit status {status} from ctr task rm\n{containerd.Describe(rm)}");
    }
}
