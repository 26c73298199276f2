using System.Security.Cryptography;
using System.Text;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Shim.Addressing;

namespace FirecrackerContainerd.Shim.Tests;

public class ShimSocketAddressTests
{
    [Fact]
    public void Address_is_the_sha256_of_address_namespace_and_id_under_run_containerd_s()
    {
        string expected = "unix:///run/containerd/s/" +
            Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("/run/x/c.sock/rt/r1")));

        Assert.Equal(expected, ShimSocketAddress.For("/run/x/c.sock", "rt", "r1"));
    }

    [Fact]
    public void Address_hash_follows_filepath_join_cleaning()
    {
        Assert.Equal(ShimSocketAddress.For("/run/x/c.sock", "rt", "r1"), ShimSocketAddress.For("/run//x/./c.sock/", "rt", "r1"));
    }

    [Theory]
    [InlineData(new[] { "/a", "b", "c" }, "/a/b/c")]
    [InlineData(new[] { "a/", "/b" }, "a/b")]
    [InlineData(new[] { "", "" }, "")]
    [InlineData(new[] { "/a/../..", "b" }, "/b")]
    [InlineData(new[] { "a/../..", "b" }, "../b")]
    [InlineData(new[] { "", "/x" }, "/x")]
    [InlineData(new[] { "a", "." }, "a")]
    public void Join_matches_go_filepath_join(string[] elements, string expected)
    {
        Assert.Equal(expected, GoPath.Join(elements));
    }

    [Fact]
    public void ToPath_strips_the_unix_scheme()
    {
        Assert.Equal("/run/containerd/s/ab", ShimSocketAddress.ToPath("unix:///run/containerd/s/ab"));
    }

    [Theory]
    [InlineData("/run/containerd/s/ab")]
    [InlineData("unix://relative")]
    public void ToPath_refuses_anything_but_an_absolute_unix_path(string address)
    {
        Assert.Throws<ArgumentException>(() => ShimSocketAddress.ToPath(address));
    }

    [Fact]
    public void ToPath_refuses_paths_too_long_for_a_socket()
    {
        var e = Assert.Throws<ArgumentException>(() => ShimSocketAddress.ToPath("unix:///" + new string('a', 120)));
        Assert.Contains("longer than 106 bytes", e.Message);
    }
}
