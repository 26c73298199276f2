using FirecrackerContainerd.Control.Protos;
using FirecrackerContainerd.Control.Shims;
using FirecrackerContainerd.Ttrpc.Server;

namespace FirecrackerContainerd.Control.Service;

/// <summary>
/// The daemon's own "FirecrackerControl" service: ListVMs names the VMs this daemon created in the caller's namespace
/// whose shims still serve; a VM whose shim is gone is forgotten on the way and not listed.
/// </summary>
public sealed class VmListService
{
    /// <summary>The ttrpc service name.</summary>
    public const string ServiceName = "FirecrackerControl";

    private readonly VmRegistry _vms;

    /// <summary>Creates the service over <paramref name="vms"/>.</summary>
    public VmListService(VmRegistry vms) => _vms = vms;

    /// <summary>Adds ListVMs to <paramref name="registry"/>.</summary>
    public TtrpcServiceRegistry Register(TtrpcServiceRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return registry.AddUnary<ListVMsRequest, ListVMsResponse>(ServiceName, "ListVMs", ListVMsRequest.Parser, ListAsync);
    }

    private async Task<ListVMsResponse> ListAsync(ListVMsRequest request, TtrpcCallContext call)
    {
        // Validates the namespace even when nothing is listed.
        string ns = _vms.Endpoint(call, "probe").Namespace;
        var response = new ListVMsResponse();
        foreach (string vmId in VmBundle.VmIdsIn(_vms.StateDir, ns))
        {
            var endpoint = ShimEndpoint.For(_vms.ContainerdAddress, ns, vmId);
            ShimProcess? process = null;
            try
            {
                var (client, found) = await endpoint.ConnectAsync(call.CancellationToken).ConfigureAwait(false);
                await client.DisposeAsync().ConfigureAwait(false);
                process = found;
            }
            catch (IOException)
            {
                await _vms.ForgetAsync(endpoint, call.CancellationToken).ConfigureAwait(false);
                continue;
            }

            response.VMs.Add(new ListedVM
            {
                VMID = vmId,
                Namespace = ns,
                ShimPid = process?.ProcessId ?? 0,
                ShimSocketPath = endpoint.SocketPath,
                BundlePath = _vms.Bundle(endpoint).RootPath,
            });
        }

        return response;
    }
}
