using System.Diagnostics;
using System.Text.Json;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.FcControl;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Shim.Addressing;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Client;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Xunit.Abstractions;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// CreateVM's DriveMounts on a real guest: ext4 images built on the host are attached to the VM, mounted by the
/// agent, used by a container through ordinary bind mounts of their VM paths, and hold the container's writes
/// on the host after StopVM, even of a paused VM.
/// </summary>
[Collection(PrivateContainerd.Name)]
[Trait("Category", "ContainerRun")]
public sealed class DriveMountTests(ContainerdFixture containerd, ITestOutputHelper output) : IAsyncLifetime, IDisposable
{
    private const string Namespace = "fcdrives";
    private const string VmIdAnnotation = "aws.firecracker.vm.id";
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromMinutes(5));
    private readonly string _images = Directory.CreateTempSubdirectory("fc-drivemounts-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => containerd.RemoveLeftoversAsync();

    public void Dispose()
    {
        _timeout.Dispose();
        Directory.Delete(_images, recursive: true);
    }

    [Fact]
    public async Task A_container_reads_a_read_only_drive_mount_and_writes_a_writable_one_that_keeps_the_data_after_StopVM_of_the_paused_vm()
    {
        const string vmId = "drives-vm";
        const string task = "drives-ctr";
        await containerd.RequireGuestAsync(_timeout.Token);
        await containerd.ImportBusyboxImageAsync(Namespace);
        string readOnlyImage = await MakeExt4Async("ro.img", ("hello.txt", "from the host\n"));
        string writableImage = await MakeExt4Async("rw.img");
        await using var shim = await StartShimAsync(vmId);
        try
        {
            // A bad request is refused before anything boots, and leaves the shim able to create its VM.
            string refused = await ControlShim.AssertStatusAsync(StatusCode.InvalidArgument, () => shim.CallAsync("CreateVM", new CreateVMRequest
            {
                VMID = vmId,
                DriveMounts = { new FirecrackerDriveMount { HostPath = readOnlyImage, VMPath = "/container/x", FilesystemType = "ext4" } },
            }, CreateVMResponse.Parser));
            Assert.Contains("DriveMounts[0].VMPath", refused, StringComparison.Ordinal);

            var clock = Stopwatch.StartNew();
            await shim.CallAsync("CreateVM", new CreateVMRequest
            {
                VMID = vmId,
                ContainerCount = 1,
                TimeoutSeconds = 180,
                DriveMounts =
                {
                    new FirecrackerDriveMount { HostPath = readOnlyImage, VMPath = "/mnt/ro", FilesystemType = "ext4" },
                    new FirecrackerDriveMount { HostPath = writableImage, VMPath = "/mnt/rw", FilesystemType = "ext4", IsWritable = true, Options = { "noatime" } },
                },
            }, CreateVMResponse.Parser);
            output.WriteLine($"CreateVM with two drive mounts: {clock.Elapsed.TotalSeconds:F1} s");

            // Both bind mounts ask for rw: only the drive mount itself makes /ro read-only.
            containerd.NoteTaskId(Namespace, task);
            clock.Restart();
            CommandResult run = await containerd.CtrWithInputAsync(Namespace, null,
                ["run", "--rm", "--runtime", "aws.firecracker", "--snapshotter", "native", "--annotation", $"{VmIdAnnotation}={vmId}",
                 "--mount", "type=bind,src=/mnt/ro,dst=/ro,options=rbind:rw", "--mount", "type=bind,src=/mnt/rw,dst=/rw,options=rbind:rw",
                 BusyboxImage.Name, task, "sh", "-c",
                 "cat /ro/hello.txt; if echo x > /ro/new; then echo ro-written; else echo ro-refused; fi; " +
                 "echo written in the vm > /rw/out.txt && echo rw-ok"]);
            output.WriteLine($"ctr run: exit {run.ExitCode} after {clock.Elapsed.TotalSeconds:F1} s\n{run.Output}");
            Assert.True(run.ExitCode == 0, containerd.Describe(run));
            Assert.Equal(["from the host", "ro-refused", "rw-ok"], run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains("Read-only file system", run.Output, StringComparison.Ordinal);

            // The write sits in the guest's page cache. A paused VM cannot flush it, so StopVM resumes it for that.
            await shim.CallAsync("PauseVM", new PauseVMRequest { VMID = vmId }, Empty.Parser);
            await shim.StopVmAsync();
        }
        finally
        {
            await containerd.RemoveContainerAsync(Namespace, task);
        }

        Assert.Equal("written in the vm\n", await DebugfsAsync(writableImage, "cat /out.txt"));
        Assert.DoesNotContain("new", await DebugfsAsync(readOnlyImage, "ls /"), StringComparison.Ordinal);
        Assert.Equal("from the host\n", await DebugfsAsync(readOnlyImage, "cat /hello.txt"));
        await containerd.AssertNothingLeftAsync(Namespace, vmId, vmId, task);
    }

    [Fact]
    public async Task A_drive_mount_the_agent_cannot_mount_fails_CreateVM_with_the_agents_error_and_ends_the_shim()
    {
        const string vmId = "drives-bad";
        await containerd.RequireGuestAsync(_timeout.Token);
        string notExt4 = Path.Combine(_images, "zeros.img");
        await File.WriteAllBytesAsync(notExt4, new byte[1 << 20]);
        await using (var shim = await StartShimAsync(vmId))
        {
            TtrpcException e = await Assert.ThrowsAsync<TtrpcException>(() => shim.CallAsync("CreateVM", new CreateVMRequest
            {
                VMID = vmId,
                ContainerCount = 1,
                TimeoutSeconds = 180,
                DriveMounts = { new FirecrackerDriveMount { HostPath = notExt4, VMPath = "/mnt/zeros", FilesystemType = "ext4" } },
            }, CreateVMResponse.Parser));
            output.WriteLine($"CreateVM: {e.StatusCode}: {e.Message}");
            Assert.Contains("drivemount0", e.Message, StringComparison.Ordinal);
            Assert.Contains("/mnt/zeros", e.Message, StringComparison.Ordinal);
            Assert.Contains("mount drive drivemount0: mount", e.Message, StringComparison.Ordinal);
            Assert.True(await Eventually.HoldsAsync(() => containerd.ShimProcesses(vmId).Count == 0), $"the shim did not exit after a failed CreateVM\n{containerd.ShimLog()}");
        }

        await containerd.AssertNothingLeftAsync(Namespace, vmId, vmId);
    }

    /// <summary>An ext4 image of 16 MiB holding <paramref name="files"/> in its root, made with mkfs.ext4 -d.</summary>
    private async Task<string> MakeExt4Async(string name, params (string Name, string Content)[] files)
    {
        if (ProcessRunner.FindOnPath("mkfs.ext4") is null || ProcessRunner.FindOnPath("debugfs") is null)
        {
            throw new InvalidOperationException("mkfs.ext4 or debugfs is missing: install them with `apt-get install e2fsprogs`");
        }

        string content = Path.Combine(_images, name + ".d");
        Directory.CreateDirectory(content);
        foreach (var (file, text) in files)
        {
            await File.WriteAllTextAsync(Path.Combine(content, file), text);
        }

        string image = Path.Combine(_images, name);
        CommandResult mkfs = await ProcessRunner.RunAsync("mkfs.ext4", ["-q", "-d", content, image, "16M"], TimeSpan.FromSeconds(60));
        Assert.True(mkfs.ExitCode == 0, $"mkfs.ext4 {image}: {mkfs.Output}");
        return image;
    }

    private static async Task<string> DebugfsAsync(string image, string request)
    {
        CommandResult debugfs = await ProcessRunner.RunAsync("debugfs", ["-R", request, image], TimeSpan.FromSeconds(30));
        Assert.True(debugfs.ExitCode == 0, $"debugfs -R \"{request}\" {image}: {debugfs.Output}");
        return debugfs.Stdout;
    }

    private Task<ControlShim> StartShimAsync(string vmId) => ControlShim.StartAsync(containerd, Namespace, vmId, _timeout.Token);
}
