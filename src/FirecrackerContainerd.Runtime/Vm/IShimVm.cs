using FirecrackerContainerd.Runtime.Config;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>Turns the runtime configuration into what one VM boots with; only called when the VM is booted.</summary>
internal delegate Task<(RuntimeConfig Config, VmDevices Devices)> VmPlan(RuntimeConfig config, CancellationToken cancellationToken);

/// <summary>
/// The one VM a shim serves, as its two services use it: the Task service boots or joins it and runs containers in
/// it; the control API creates it with its own settings, pauses, resumes and stops it.
/// </summary>
internal interface IShimVm
{
    /// <summary>The VM once booted (by a task's Create or by CreateVM), even after it ended; null before.</summary>
    MicroVm? Current { get; }

    /// <summary>The booted VM, for a call about a task in it.</summary>
    /// <exception cref="FirecrackerContainerd.Ttrpc.TtrpcException">FailedPrecondition: no VM was booted.</exception>
    MicroVm Running { get; }

    /// <summary>The VM a task's Create runs its container in: <paramref name="vmId"/>, booted now from the runtime configuration unless it runs already.</summary>
    /// <exception cref="FirecrackerContainerd.Ttrpc.TtrpcException">FailedPrecondition: the shim runs another VM, or its VM has exited.</exception>
    Task<MicroVm> EnsureAsync(string vmId, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="EnsureAsync(string, CancellationToken)"/>, but a VM booted now gets the configuration and devices
    /// <paramref name="plan"/> makes of the runtime configuration (a pod's sandbox: its size, its network).
    /// </summary>
    Task<MicroVm> EnsureAsync(string vmId, VmPlan plan, CancellationToken cancellationToken);

    /// <summary>
    /// The control API's CreateVM: boots <paramref name="vmId"/> now with <paramref name="config"/> and
    /// <paramref name="devices"/>. Only once per shim, and not once a task's Create booted the VM.
    /// <paramref name="keepAlive"/> keeps the VM, and the shim, after its last task is deleted.
    /// </summary>
    /// <exception cref="FirecrackerContainerd.Ttrpc.TtrpcException">AlreadyExists: the VM was booted already.</exception>
    Task<MicroVm> CreateAsync(string vmId, RuntimeConfig config, VmDevices devices, bool keepAlive, CancellationToken cancellationToken);

    /// <summary>
    /// As <see cref="CreateAsync(string, RuntimeConfig, VmDevices, bool, CancellationToken)"/>, with the configuration
    /// and devices <paramref name="plan"/> makes once it is known that no VM was booted (a CNI network's ADD, which must
    /// not touch the network of a VM that exists).
    /// </summary>
    /// <exception cref="FirecrackerContainerd.Ttrpc.TtrpcException">AlreadyExists: the VM was booted already.</exception>
    Task<MicroVm> CreateAsync(string vmId, Func<CancellationToken, Task<(RuntimeConfig Config, VmDevices Devices)>> plan, bool keepAlive, CancellationToken cancellationToken);

    /// <summary>Ends the shim after a failed CreateVM: a shim is good for one VM, once.</summary>
    void ExitAfterFailedCreate(string reason);

    /// <summary>True while the control API holds the VM paused (and the VMM says so).</summary>
    Task<bool> IsPausedAsync(CancellationToken cancellationToken);

    /// <summary>Stops the running VM's vCPUs; its tasks read as paused until <see cref="ResumeAsync"/>.</summary>
    Task PauseAsync(CancellationToken cancellationToken);

    /// <summary>Lets the paused VM run again.</summary>
    Task ResumeAsync(CancellationToken cancellationToken);

    /// <summary>
    /// The control API's StopVM: flushes the drive mounts (bounded by <paramref name="flushTimeout"/>, at least 5 s),
    /// stops the VMM and reports every process in the VM as killed (137) to containerd before it returns. A VM made by
    /// CreateVM then ends the shim (<see cref="ShimVm"/> says when).
    /// </summary>
    Task StopAsync(TimeSpan flushTimeout, CancellationToken cancellationToken);

    /// <summary>
    /// containerd's Shutdown: unless tasks remain or CreateVM asked to keep the VM (or <paramref name="now"/> is set),
    /// stops the VM and ends the shim, with <paramref name="reason"/>.
    /// </summary>
    Task ShutdownAsync(bool now, string reason, CancellationToken cancellationToken);
}
