using System.Security.Cryptography;
using System.Text;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Shim.Addressing;

/// <summary>
/// The address of a shim's ttrpc socket: <c>unix:///run/containerd/s/&lt;hex sha256("&lt;address&gt;/&lt;ns&gt;/&lt;id&gt;")&gt;</c>,
/// the same name containerd's own shim library computes.
/// </summary>
public static class ShimSocketAddress
{
    /// <summary>The hard-coded directory for shim sockets (it does not follow containerd's state directory).</summary>
    public const string SocketDirectory = "/run/containerd/s";

    /// <summary>The scheme prefix of a filesystem socket address.</summary>
    public const string UnixScheme = "unix://";

    /// <summary>Longest socket path the shim library accepts (sun_path is 108 bytes; it keeps a margin).</summary>
    public const int SocketPathLimit = 106;

    /// <summary>Computes the socket address for <paramref name="id"/> in <paramref name="ns"/> of the containerd at <paramref name="containerdAddress"/>.</summary>
    public static string For(string containerdAddress, string ns, string id)
    {
        ArgumentNullException.ThrowIfNull(containerdAddress);
        ArgumentException.ThrowIfNullOrEmpty(ns);
        ArgumentException.ThrowIfNullOrEmpty(id);
        string key = GoPath.Join(containerdAddress, ns, id);
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
        return UnixScheme + GoPath.Join(SocketDirectory, hash);
    }

    /// <summary>The filesystem path inside a <c>unix://</c> address.</summary>
    /// <exception cref="ArgumentException">The address is not a <c>unix://</c> path or is too long for a socket.</exception>
    public static string ToPath(string address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (!address.StartsWith(UnixScheme, StringComparison.Ordinal))
        {
            throw new ArgumentException($"shim address {address} is not a unix:// socket path", nameof(address));
        }

        string path = address[UnixScheme.Length..];
        if (path.Length == 0 || path[0] != '/')
        {
            throw new ArgumentException($"shim address {address} does not hold an absolute path", nameof(address));
        }

        if (Encoding.UTF8.GetByteCount(path) > SocketPathLimit)
        {
            throw new ArgumentException(
                $"shim socket path {path} is longer than {SocketPathLimit} bytes", nameof(address));
        }

        return path;
    }
}
