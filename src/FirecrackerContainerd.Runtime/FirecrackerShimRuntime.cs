using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos.TaskV2;
using FirecrackerContainerd.Runtime.Config;
using FirecrackerContainerd.Runtime.Rootfs;
using FirecrackerContainerd.Runtime.Tasks;
using FirecrackerContainerd.Runtime.Vm;
using FirecrackerContainerd.Runtime.VmControl;
using FirecrackerContainerd.Shim.Addressing;
using FirecrackerContainerd.Shim.Arguments;
using FirecrackerContainerd.Shim.Lifecycle;

using FirecrackerContainerd.Vmm.Jail;

namespace FirecrackerContainerd.Runtime;

/// <summary>The aws.firecracker runtime as plugged into the shim plumbing.</summary>
public sealed class FirecrackerShimRuntime : IShimRuntime
{
    private readonly VmIdentity _identity;

    /// <summary>The runtime as containerd starts it: the VM of a task is decided with this process's environment.</summary>
    public FirecrackerShimRuntime()
        : this(VmIdentity.OfThisProcess)
    {
    }

    internal FirecrackerShimRuntime(VmIdentity identity) => _identity = identity;

    /// <summary>
    /// One shim per VM (<see cref="VmIdentity"/>): tasks that name the same VM share a shim and so a VM; a task that
    /// names none gets a VM of its own, named after the task.
    /// </summary>
    public string SocketKey(ShimArguments arguments, string bundlePath)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        return _identity.SocketKey(bundlePath, arguments.Id);
    }

    /// <summary>
    /// The Task service and the VM control API ("Firecracker") over one <see cref="ShimVm"/> and one task table; the
    /// control API serves the VM named by the socket key.
    /// </summary>
    public ShimServices CreateServices(ShimDaemonContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var tasks = new TaskTable();
        var vm = new ShimVm(context, tasks);
        var control = new FirecrackerControlService(vm, SocketKey(context.Arguments, context.BundlePath), context.Logger);
        RootfsImageBuilder buildRootfs = async (mounts, image, cancellationToken) =>
            await RootfsImage.CreateAsync(mounts, image, null, cancellationToken).ConfigureAwait(false);
        return new ShimServices(new VmTaskService(context, vm, tasks, _identity, buildRootfs), registry => control.Register(registry));
    }

    /// <summary>
    /// The VM and everything in it die with the shim's process (its VMM is tied to it). What a killed shim
    /// leaves is its VM directory (stub drives, rootfs images, sockets): removed here once no shim serves the
    /// VM any more. A VM whose shim still answers keeps its directory (another of its tasks runs).
    /// </summary>
    public async Task<DeleteResponse> CleanupAsync(ShimArguments arguments, string bundlePath, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        string vmId = SocketKey(arguments, bundlePath);
        string socket = ShimSocketAddress.ToPath(ShimSocketAddress.For(arguments.Address, arguments.Namespace, vmId));
        if (!await ShimSocket.AnswersAsync(socket, cancellationToken).ConfigureAwait(false))
        {
            RemoveVmDirectory(arguments.Namespace, vmId);
        }

        return ShimProgram.KilledNow();
    }

    private static void RemoveVmDirectory(string ns, string vmId)
    {
        VmDir dir;
        RuntimeConfig config;
        try
        {
            config = RuntimeConfig.Load();
            dir = VmDir.ShimDir(config.ShimBaseDir, ns, vmId);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or IOException)
        {
            return; // no configuration or no such directory: nothing of ours to remove
        }

        if (config.Jail.Enabled)
        {
            try
            {
                JailSettings jail = config.Jail.ToSettings(Environment.ProcessPath);
                VmJail.ClearLeftovers(jail, VmCgroups.Detect(), Path.GetFileName(dir.RootPath.TrimEnd('/')));
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                // The next shim of this VM clears it before it starts, or says why it cannot.
            }
        }

        // Nothing is ever mounted in a VM directory on the host, so a recursive delete removes only our files.
        try
        {
            Directory.Delete(dir.RootPath, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
