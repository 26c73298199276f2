using System.Text;
using FirecrackerContainerd.Vsock.Unix;

namespace FirecrackerContainerd.Vsock.Tests.Unix;

public sealed class ConnectRequestTests
{
    [Theory]
    [InlineData("CONNECT 10789", 10789u)]
    [InlineData("connect 52", 52u)]
    [InlineData("Connect 4294967295", 4294967295u)]
    [InlineData("CONNECT 0", 0u)]
    public void A_well_formed_request_yields_its_port(string line, uint port)
    {
        Assert.True(ConnectRequest.TryParse(Encoding.ASCII.GetBytes(line), out uint parsed));
        Assert.Equal(port, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("CONNECT")]
    [InlineData("CONNECT ")]
    [InlineData("CONNECT  10789")]
    [InlineData("CONNECT 4294967296")]
    [InlineData("CONNECT -1")]
    [InlineData("CONNECT 12ab")]
    [InlineData("CONNECT 10789 ")]
    [InlineData("CONNECT 10789\r")]
    [InlineData("KONNECT 10789")]
    [InlineData("CONNECT 000000000000000000000000010789")]
    public void Garbage_is_refused(string line)
    {
        Assert.False(ConnectRequest.TryParse(Encoding.ASCII.GetBytes(line), out _));
    }

    [Theory]
    [InlineData(10789u)]
    [InlineData(0u)]
    [InlineData(4294967295u)]
    public void The_line_a_client_sends_is_one_the_device_parses_back(uint port)
    {
        byte[] line = ConnectRequest.Format(port);

        Assert.Equal($"CONNECT {port}\n", Encoding.ASCII.GetString(line));
        Assert.True(ConnectRequest.TryParse(line.AsSpan(0, line.Length - 1), out uint parsed));
        Assert.Equal(port, parsed);
    }
}
