using System.Text;
using FirecrackerContainerd.Vsock.Unix;

namespace FirecrackerContainerd.Vsock.Tests.Unix;

public sealed class ConnectAcknowledgementTests
{
    [Fact]
    public void The_acknowledgement_names_the_host_port_on_one_line()
    {
        Assert.Equal("OK 1073741824\n", Encoding.ASCII.GetString(ConnectAcknowledgement.Format(1u << 30)));
    }

    [Theory]
    [InlineData("OK 7", 7u)]
    [InlineData("OK 1073741824", 1073741824u)]
    [InlineData("OK 4294967295", 4294967295u)]
    public void A_well_formed_acknowledgement_yields_its_host_port(string line, uint hostPort)
    {
        Assert.True(ConnectAcknowledgement.TryParse(line, out uint parsed));
        Assert.Equal(hostPort, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("OK")]
    [InlineData("OK ")]
    [InlineData("ok 7")]
    [InlineData(" OK 7")]
    [InlineData("OK  7")]
    [InlineData("OK 12x")]
    [InlineData("OK -1")]
    [InlineData("OK +7")]
    [InlineData("OK 4294967296")]
    [InlineData("NO 7")]
    public void Anything_else_is_refused(string line)
    {
        Assert.False(ConnectAcknowledgement.TryParse(line, out _));
    }

    [Fact]
    public void The_line_the_device_sends_fits_what_a_client_reads()
    {
        byte[] line = ConnectAcknowledgement.Format(uint.MaxValue);

        Assert.True(line.Length - 1 < ConnectAcknowledgement.MaxLineLength);
        Assert.True(ConnectAcknowledgement.TryParse(Encoding.ASCII.GetString(line, 0, line.Length - 1), out uint parsed));
        Assert.Equal(uint.MaxValue, parsed);
    }
}
