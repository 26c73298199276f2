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

    [Fact]
    public async Task An_existing_socket_is_connected_to_through_a_descriptor_that_no_later_rename_redirects()
    {
        using var dir = new TempDir();
        string socketPath = dir.Combine("agent.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);

        using var path = UnixSocketPath.ForExistingSocket(socketPath);
        // Moved away after it was opened: the descriptor still names the socket itself.
        File.Move(socketPath, dir.Combine("moved.sock"));
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(path.ConnectPath));

        Assert.StartsWith("/proc/self/fd/", path.ConnectPath, StringComparison.Ordinal);
        using Socket accepted = await listener.AcceptAsync();
    }

    [Fact]
    public void A_symbolic_link_to_a_socket_is_refused_naming_it()
    {
        using var dir = new TempDir();
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(dir.Combine("elsewhere.sock")));
        string link = dir.Combine("agent.sock");
        File.CreateSymbolicLink(link, dir.Combine("elsewhere.sock"));

        var e = Assert.Throws<IOException>(() => UnixSocketPath.ForExistingSocket(link));

        Assert.Contains(link, e.Message, StringComparison.Ordinal);
        Assert.Contains("symbolic link", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_regular_file_is_refused_and_a_missing_socket_is_not_found()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.Combine("plain"), "x");

        Assert.Contains("not a unix socket", Assert.Throws<IOException>(() => UnixSocketPath.ForExistingSocket(dir.Combine("plain"))).Message, StringComparison.Ordinal);
        Assert.Throws<FileNotFoundException>(() => UnixSocketPath.ForExistingSocket(dir.Combine("missing.sock")));
    }
}
