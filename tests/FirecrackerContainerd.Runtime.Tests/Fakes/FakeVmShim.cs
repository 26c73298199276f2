using System.Collections.Concurrent;
using System.Text.Json;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Rootfs;
using FirecrackerContainerd.Runtime.Tasks;
using FirecrackerContainerd.Runtime.Tracing;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Shim.Arguments;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Runtime.Tests.Fakes;

/// <summary>
/// A shim's services as the shim builds them (task service, task table, <see cref="ShimVm"/>, container rootfs), over a
/// fake VM: a booted VM is a <see cref="FakeMachine"/> and a <see cref="FakeAgent"/> in a VM directory under a temp
/// directory, and a rootfs image is a small file naming its mounts. Disposing removes the temp directory.
/// </summary>
internal sealed class FakeVmShim : IAsyncDisposable
{
    public const string Namespace = "ns1";

    /// <summary>The VM the tests' tasks name unless they say otherwise: they share it, as containers of one shim do.</summary>
    public const string VmId = "vm1";
    private readonly string _dir = Directory.CreateTempSubdirectory("fcshim-").FullName;
    private readonly Dictionary<string, string> _environment = new(StringComparer.Ordinal);

    /// <summary>A shim whose VM has two container slots; <paramref name="deleteGrace"/> bounds its wait for deletes once a VM made by CreateVM ended.</summary>
    public FakeVmShim(TimeSpan? deleteGrace = null)
    {
        Context = new ShimDaemonContext(
            new ShimArguments(Namespace, "/run/containerd/containerd.sock", "/usr/bin/containerd", "c1", Path.Combine(_dir, "bundles", "c1"), "", false, ShimVerb.Serve),
            Path.Combine(_dir, "bundles", "c1"), "unix:///run/fake.sock", Events, Lifetime, NullLogger.Instance);
        Vm = new ShimVm(Context, Tasks, BootAsync, () => Config, deleteGrace ?? TimeSpan.FromSeconds(10));
        Service = new VmTaskService(Context, Vm, Tasks, new VmIdentity(name => _environment.GetValueOrDefault(name)), BuildImageAsync);
    }

    public RecordingEvents Events { get; } = new();

    public ShimLifetime Lifetime { get; } = new();

    public ShimDaemonContext Context { get; }

    public TaskTable Tasks { get; } = new();

    public ShimVm Vm { get; }

    public VmTaskService Service { get; }

    /// <summary>The runtime configuration the shim boots a task's VM with.</summary>
    public RuntimeConfig Config { get; } = new() { KernelImagePath = "/vmlinuz", InitrdPath = "/initrd.img", ContainerSlots = 2 };

    /// <summary>The VM ids booted, in order.</summary>
    public ConcurrentQueue<string> Booted { get; } = new();

    /// <summary>The configuration and devices each VM was booted with, in order.</summary>
    public ConcurrentQueue<(RuntimeConfig Config, VmDevices Devices)> BootedWith { get; } = new();

    /// <summary>The machine of the booted VM.</summary>
    public FakeMachine Machine => (FakeMachine)Vm.Running.Machine;

    /// <summary>The agent of the booted VM.</summary>
    public FakeAgent Agent => (FakeAgent)Vm.Running.Agent;

    /// <summary>What the booted VM's phase trace logged (only when <see cref="Config"/> turns the trace on).</summary>
    public RecordingLogger TraceLog { get; } = new();

    /// <summary>When set, building a rootfs image fails with it.</summary>
    public Exception? ImageFailure { get; set; }

    /// <summary>Sets a variable of the shim's environment (what containerd passed it).</summary>
    public void SetEnvironment(string name, string value) => _environment[name] = value;

    /// <summary>A call context as the ttrpc server makes one.</summary>
    public static TtrpcCallContext Call(CancellationToken cancellationToken = default) =>
        new("containerd.task.v2.Task", "Test", 1, TtrpcMetadata.Empty, null, cancellationToken);

    /// <summary>A bundle for task <paramref name="id"/>, whose config names <paramref name="vmId"/> (none when null), and the Create request for it.</summary>
    public CreateTaskRequest CreateRequest(string id, string? vmId = VmId)
    {
        var annotations = vmId is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["aws.firecracker.vm.id"] = vmId };
        return CreateRequestWithSpec(id, JsonSerializer.Serialize(new { ociVersion = "1.0.2", annotations }));
    }

    /// <summary>A bundle for task <paramref name="id"/> whose config is <paramref name="specJson"/>, and the Create request for it.</summary>
    public CreateTaskRequest CreateRequestWithSpec(string id, string specJson)
    {
        string bundle = Path.Combine(_dir, "bundles", id);
        Directory.CreateDirectory(bundle);
        File.WriteAllText(Path.Combine(bundle, "config.json"), specJson);
        return new CreateTaskRequest
        {
            Id = id,
            Bundle = bundle,
            Stdout = "",
            Rootfs = { new Mount { Type = "bind", Source = "/snapshots/" + id, Options = { "rbind", "ro" } } },
        };
    }

    /// <summary>Creates and starts task <paramref name="id"/> in its VM.</summary>
    public async Task<CreateTaskResponse> RunAsync(string id, string? vmId = VmId)
    {
        CreateTaskResponse created = await Service.CreateAsync(CreateRequest(id, vmId), Call());
        await Service.StartAsync(new StartRequest { Id = id }, Call());
        return created;
    }

    /// <summary>The path of the VM directory of <paramref name="vmId"/>.</summary>
    public string VmDirectory(string vmId = VmId) => Path.Combine(_dir, "vms", Namespace + "#" + vmId);

    public async ValueTask DisposeAsync()
    {
        await Vm.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private Task<MicroVm> BootAsync(RuntimeConfig config, VmDevices devices, string ns, string vmId, Microsoft.Extensions.Logging.ILogger logger, CancellationToken cancellationToken)
    {
        Booted.Enqueue(vmId);
        BootedWith.Enqueue((config, devices));
        Directory.CreateDirectory(Path.Combine(_dir, "vms"));
        VmDir dir = VmDir.ShimDir(Path.Combine(_dir, "vms"), ns, vmId);
        dir.Mkdir();
        return Task.FromResult(new MicroVm(dir, new FakeMachine(vmId), new FakeAgent(), config.ContainerSlots, devices.DriveMounts, logger)
        {
            Trace = new PhaseTrace(TraceLog, config.Trace),
        });
    }

    private async Task BuildImageAsync(IReadOnlyList<Mount> mounts, string imagePath, CancellationToken cancellationToken)
    {
        if (ImageFailure is { } failure)
        {
            throw failure;
        }

        await File.WriteAllTextAsync(imagePath, string.Join(",", mounts.Select(m => m.Source)), cancellationToken);
    }
}
