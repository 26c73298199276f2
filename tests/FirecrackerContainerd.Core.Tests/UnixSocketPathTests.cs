using System.Net.Sockets;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Tests;

public class UnixSocketPathTests
{
    [Fact]
    public void A_short_socket_path_is_used_as_it_is()
    {
        using var path = UnixSocketPath.For("/tmp/x/firecracker.sock");

        Assert.Equal("/tmp/x/firecracker.sock", path.ConnectPath);
    }

    [Fact]
    public async Task A_socket_too_deep_for_sockaddr_un_is_reached_through_its_directory_descriptor()
    {
        using var dir = new TempDir();
        var deep = Directory.CreateDirectory(dir.Combine(new string('a', 100), new string('b', 100))).FullName;
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using (var viaDirectory = UnixSocketPath.For(Path.Combine(deep, "probe")))
        {
            // Bind through the same trick so the test needs no chdir (the working directory is process-wide).
            listener.Bind(new UnixDomainSocketEndPoint(viaDirectory.ConnectPath));
        }

        listener.Listen(1);
        using var path = UnixSocketPath.For(Path.Combine(deep, "probe"));
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);

        await client.ConnectAsync(new UnixDomainSocketEndPoint(path.ConnectPath));

        Assert.StartsWith("/proc/self/fd/", path.ConnectPath, StringComparison.Ordinal);
        Assert.True(UnixSocketPath.Fits(path.ConnectPath));
        Assert.True(File.Exists(Path.Combine(deep, "probe")));
    }
}
