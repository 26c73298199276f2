using FirecrackerContainerd.Runtime.Config;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>Boots VM <paramref name="vmId"/> of namespace <paramref name="ns"/> and waits until its agent answers (<see cref="MicroVm.StartAsync"/> in the shim).</summary>
internal delegate Task<MicroVm> VmBoot(RuntimeConfig config, VmDevices devices, string ns, string vmId, ILogger logger, CancellationToken cancellationToken);
