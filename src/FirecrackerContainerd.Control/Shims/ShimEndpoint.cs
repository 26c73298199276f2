using FirecrackerContainerd.Core;
using FirecrackerContainerd.Shim.Addressing;
using FirecrackerContainerd.Shim.Lifecycle;
using FirecrackerContainerd.Ttrpc.Client;
using FirecrackerContainerd.Ttrpc.Transport;

namespace FirecrackerContainerd.Control.Shims;

/// <summary>
/// Where the shim of VM <see cref="VmId"/> in <see cref="Namespace"/> listens: the socket containerd's shim library
/// names after (containerd address, namespace, VM id), the same one containers with the VM id annotation reach.
/// </summary>
public sealed record ShimEndpoint
{
    private ShimEndpoint(string ns, string vmId, string address)
    {
        Namespace = ns;
        VmId = vmId;
        Address = address;
        SocketPath = ShimSocketAddress.ToPath(address);
    }

    /// <summary>The containerd namespace.</summary>
    public string Namespace { get; }

    /// <summary>The VM id (the shim's socket key).</summary>
    public string VmId { get; }

    /// <summary>The <c>unix://</c> address a shim's <c>start</c> prints.</summary>
    public string Address { get; }

    /// <summary>The socket's filesystem path.</summary>
    public string SocketPath { get; }

    /// <summary>The endpoint of (<paramref name="ns"/>, <paramref name="vmId"/>), both validated as containerd identifiers.</summary>
    /// <exception cref="ArgumentException">An identifier is invalid; the message says which.</exception>
    public static ShimEndpoint For(string containerdAddress, string ns, string vmId)
    {
        ValidateIdentifier("namespace", ns);
        ValidateIdentifier("vm id", vmId);
        return new ShimEndpoint(ns, vmId, ShimSocketAddress.For(containerdAddress, ns, vmId));
    }

    /// <summary>True when a process accepts connections on the socket now.</summary>
    public Task<bool> AnswersAsync(CancellationToken cancellationToken) => ShimSocket.AnswersAsync(SocketPath, cancellationToken);

    /// <summary>Connects a ttrpc client and learns the serving process from the socket's peer credentials.</summary>
    /// <exception cref="IOException">Nothing accepts on the socket.</exception>
    public async Task<(TtrpcClient Client, ShimProcess? Process)> ConnectAsync(CancellationToken cancellationToken)
    {
        var socket = await UnixSocketTransport.ConnectAsync(SocketPath, cancellationToken).ConfigureAwait(false);
        ShimProcess? process;
        try
        {
            process = ShimProcess.Find(PeerCredentials.Of(socket).ProcessId);
        }
        catch (IOException)
        {
            process = null;
        }

        return (new TtrpcClient(socket), process);
    }

    /// <summary>Removes the socket file when nothing answers on it any more (a killed shim cannot remove it itself).</summary>
    public async Task RemoveIfStaleAsync(CancellationToken cancellationToken)
    {
        if (!await AnswersAsync(cancellationToken).ConfigureAwait(false))
        {
            ShimSocket.Remove(SocketPath);
        }
    }

    private static void ValidateIdentifier(string what, string value)
    {
        try
        {
            Identifiers.Validate(value);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"invalid {what}: {e.Message}", e);
        }
    }
}
