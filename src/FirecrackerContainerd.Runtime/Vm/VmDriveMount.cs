using System.Collections.Immutable;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Vmm.Machine;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>
/// A host file that a VM gets as a block device and its agent mounts at <paramref name="VmPath"/> before the VM
/// is handed out (CreateVM's DriveMounts). As upstream, the VM boots with a stub drive in its place, which is
/// then patched to the host file: the agent finds drives by their stub content, with either VMM.
/// </summary>
/// <param name="DriveId">The drive's id in the VM ("drivemount0", ...); never a container slot's "stubN".</param>
/// <param name="HostPath">The file or block device on the host.</param>
/// <param name="VmPath">Where the agent mounts it in the guest.</param>
/// <param name="FilesystemType">The file system on the drive ("ext4").</param>
/// <param name="Options">Mount options as the agent gets them ("ro" already added to a read-only mount).</param>
/// <param name="IsWritable">Whether the guest may write the drive; a read-only drive is read-only in the VMM too.</param>
/// <param name="CacheType">How the VMM caches the drive's writes.</param>
/// <param name="RateLimiter">IO limits (Firecracker only).</param>
public sealed record VmDriveMount(
    string DriveId,
    string HostPath,
    string VmPath,
    string FilesystemType,
    ImmutableArray<string> Options,
    bool IsWritable,
    DriveCacheType CacheType,
    RateLimiter? RateLimiter = null)
{
    /// <summary>How long a stop waits at least for the agent to flush and unmount the drive mounts.</summary>
    private static readonly TimeSpan MinimumFlushTime = TimeSpan.FromSeconds(5);

    /// <summary>The drive id of drive mount number <paramref name="index"/>.</summary>
    public static string DriveIdOf(int index) => $"drivemount{index}";

    /// <summary>
    /// Writes the stub file the VM boots with in place of the host file, and returns its drive. The stub is sparse
    /// and as large as the host file, so the patch changes no capacity: QEMU cannot resize a read-only drive.
    /// </summary>
    internal Drive CreateStub(VmDir dir)
    {
        string path = StubPath(dir);
        File.Delete(path);
        StubDrive.Create(path, DriveId);
        long size = new FileInfo(HostPath).Length;
        if (size > StubDrive.SectorSize)
        {
            using FileStream stub = new(path, FileMode.Open, FileAccess.Write);
            stub.SetLength(size);
        }

        return new Drive(DriveId, path, IsReadOnly: !IsWritable, CacheType: CacheType, RateLimiter: RateLimiter);
    }

    /// <summary>Where the stub file of this drive mount lives: in the VM directory, named by the drive id.</summary>
    internal string StubPath(VmDir dir) => Path.Combine(dir.RootPath, DriveId);

    /// <summary>
    /// Patches every stub to its host file and has the agent mount it, in order (a later mount may lie below an
    /// earlier one). A failure names the mount and carries the agent's or the VMM's error.
    /// </summary>
    internal static async Task MountAllAsync(IReadOnlyList<VmDriveMount> mounts, IVirtualMachine machine, IGuestAgent agent, CancellationToken cancellationToken)
    {
        foreach (VmDriveMount mount in mounts)
        {
            try
            {
                await machine.PatchDriveAsync(mount.DriveId, mount.HostPath, cancellationToken).ConfigureAwait(false);
                await agent.MountDriveAsync(mount.DriveId, mount.VmPath, mount.FilesystemType, mount.Options, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The agent's status is kept; a VMM failure (QMP, Firecracker API) is the shim's Internal error.
                throw new TtrpcException(e is TtrpcException t ? t.StatusCode : StatusCode.Internal,
                    $"vm \"{machine.VmId}\": drive mount {mount.DriveId} of {mount.HostPath} at {mount.VmPath}: {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// Has the agent flush and unmount the drive mounts (last first) so that what the guest wrote reaches the host
    /// files before the VM ends. A paused VM with a writable drive mount is resumed for it: what its containers wrote
    /// would otherwise be lost; a paused VM with only read-only ones has nothing to lose and stays paused. Skipped
    /// for an exited VM; bounded by the larger of <paramref name="flushTimeout"/> and <see cref="MinimumFlushTime"/>;
    /// failures are logged and the stop goes on.
    /// </summary>
    internal static async Task UnmountAllAsync(
        IReadOnlyList<VmDriveMount> mounts, IVirtualMachine machine, IGuestAgent agent, TimeSpan flushTimeout, ILogger logger, CancellationToken cancellationToken)
    {
        var failures = new List<string>();
        if (mounts.Count == 0 || machine.Exited.IsCompleted)
        {
            return;
        }

        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(flushTimeout > MinimumFlushTime ? flushTimeout : MinimumFlushTime);
        try
        {
            MachineState state = await machine.GetStateAsync(bound.Token).ConfigureAwait(false);
            if (state == MachineState.Paused && mounts.Any(m => m.IsWritable))
            {
                await machine.ResumeAsync(bound.Token).ConfigureAwait(false);
            }
            else if (state != MachineState.Running)
            {
                return;
            }

            foreach (VmDriveMount mount in mounts.Reverse())
            {
                try
                {
                    await agent.UnmountDriveAsync(mount.DriveId, bound.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is TtrpcException or IOException or InvalidOperationException)
                {
                    failures.Add($"{mount.DriveId} at {mount.VmPath}: {e.Message}");
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            failures.Add("the agent did not unmount the drive mounts in time");
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            failures.Add($"the VMM did not report its state: {e.Message}");
        }

        foreach (string failure in failures)
        {
            LogFlushFailed(logger, machine.VmId, failure, null);
        }
    }

    // The source generator of LoggerMessage does not take records.
    private static readonly Action<ILogger, string, string, Exception?> LogFlushFailed =
        LoggerMessage.Define<string, string>(LogLevel.Warning, default, "vm {VmId}: drive mount not flushed before the stop: {Failure}");
}
