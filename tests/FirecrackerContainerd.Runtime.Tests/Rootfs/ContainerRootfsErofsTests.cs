using System.Collections.Immutable;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Rootfs;
using FirecrackerContainerd.Runtime.Tests.Fakes;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.TestSupport;
using Microsoft.Extensions.Logging.Abstractions;

namespace FirecrackerContainerd.Runtime.Tests.Rootfs;

/// <summary>An erofs snapshot's layers attached as read-only layer slots, stacked in the guest, and undone last first.</summary>
public sealed class ContainerRootfsErofsTests : IAsyncDisposable
{
    private readonly TempDir _dir = new();
    private readonly FakeMachine _machine = new("vm1");
    private readonly FakeAgent _agent = new();
    private readonly MicroVm _vm;

    public ContainerRootfsErofsTests()
    {
        Directory.CreateDirectory(_dir.Combine("vms"));
        VmDir dir = VmDir.ShimDir(_dir.Combine("vms"), "ns", "vm1");
        dir.Mkdir();
        _vm = new MicroVm(dir, _machine, _agent, slots: 2, ImmutableArray<VmDriveMount>.Empty, NullLogger.Instance, layerSlots: 3, layerUpperMib: 64);
    }

    public async ValueTask DisposeAsync()
    {
        await _vm.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task Each_layer_takes_a_read_only_slot_and_the_guest_stacks_them_top_first_then_delete_undoes_it_last_first()
    {
        string[] layers = [Layer("3"), Layer("2")];

        ContainerRootfs rootfs = await ContainerRootfs.AttachAsync(_vm, Request("c1", "3", "2"), NoCopy, NullLogger.Instance, CancellationToken.None);

        Assert.Equal(string.Empty, rootfs.DriveId);
        Assert.Equal([$"layer0={layers[0]}", $"layer1={layers[1]}"], _machine.Patches.ToArray());
        Assert.Equal(
            ["MountDrive layer0 /container/c1/layers/0 erofs", "MountDrive layer1 /container/c1/layers/1 erofs", "MountOverlay /container/c1/rootfs layer0:layer1 64"],
            _agent.Calls.ToArray());

        _machine.Patches.Clear();
        _agent.Calls.Clear();
        await rootfs.DetachAsync(CancellationToken.None);

        Assert.Equal(["UnmountOverlay /container/c1/rootfs", "UnmountDrive layer1", "UnmountDrive layer0"], _agent.Calls.ToArray());
        Assert.Equal([$"layer1={_vm.LayerStubPath(1)}", $"layer0={_vm.LayerStubPath(0)}"], _machine.Patches.ToArray());
        Assert.Equal(3, _vm.AcquireLayerSlots("next", 3).Length);
    }

    [Fact]
    public async Task More_layers_than_free_layer_slots_is_refused_naming_layer_slots_and_attaches_nothing()
    {
        Layer("4");
        Layer("3");
        Layer("2");
        Layer("1");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(
            () => ContainerRootfs.AttachAsync(_vm, Request("c1", "4", "3", "2", "1"), NoCopy, NullLogger.Instance, CancellationToken.None));

        Assert.Contains("has 3 free of 3 layer slots (layer_slots)", error.Message, StringComparison.Ordinal);
        Assert.Contains("container \"c1\" needs 4", error.Message, StringComparison.Ordinal);
        Assert.Empty(_machine.Patches);
        Assert.Empty(_agent.Calls);
        Assert.Equal(3, _vm.AcquireLayerSlots("next", 3).Length);
    }

    [Fact]
    public void Layer_slots_are_given_all_at_once_or_not_at_all()
    {
        var first = _vm.AcquireLayerSlots("a", 2);

        Assert.Throws<InvalidOperationException>(() => _vm.AcquireLayerSlots("b", 2));
        _vm.ReleaseLayerSlots(first.Select(s => s.Slot));
        Assert.Equal(["layer0", "layer1"], _vm.AcquireLayerSlots("b", 2).Select(s => s.DriveId).ToArray());
    }

    private static Task NoCopy(IReadOnlyList<Mount> mounts, string imagePath, CancellationToken cancellationToken) =>
        throw new InvalidOperationException("an erofs snapshot must not be copied");

    private string Layer(string id)
    {
        Directory.CreateDirectory(_dir.Combine("snapshots", id, "fs"));
        return _dir.File(Path.Combine("snapshots", id, "layer.erofs"));
    }

    private CreateTaskRequest Request(string id, params string[] lowers)
    {
        Directory.CreateDirectory(_dir.Combine("snapshots", "upper", "fs"));
        return new CreateTaskRequest
        {
            Id = id,
            Bundle = _dir.Combine("bundle"),
            Rootfs =
            {
                new Mount
                {
                    Type = "overlay",
                    Source = "overlay",
                    Options =
                    {
                        $"workdir={_dir.Combine("snapshots", "upper", "work")}",
                        $"upperdir={_dir.Combine("snapshots", "upper", "fs")}",
                        $"lowerdir={string.Join(':', lowers.Select(l => _dir.Combine("snapshots", l, "fs")))}",
                    },
                },
            },
        };
    }
}
