using FirecrackerContainerd.Shim.Arguments;

namespace FirecrackerContainerd.Shim.Tests;

public class ShimArgumentsTests
{
    [Fact]
    public void Start_command_line_from_containerd_is_parsed()
    {
        var args = ShimArguments.Parse(
            ["-namespace", "default", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c1", "-debug", "start"]);

        Assert.Equal(new ShimArguments("default", "/run/containerd/containerd.sock", "/usr/bin/containerd", "c1", "", "", true, ShimVerb.Start), args);
    }

    [Fact]
    public void Delete_command_line_carries_the_bundle()
    {
        var args = ShimArguments.Parse(["-namespace", "ns", "-address", "/a", "-publish-binary", "/b", "-id", "x", "-bundle", "/state/ns/x", "delete"]);

        Assert.Equal(ShimVerb.Delete, args.Verb);
        Assert.Equal("/state/ns/x", args.Bundle);
        Assert.False(args.Debug);
    }

    [Fact]
    public void Equals_form_and_double_dash_are_accepted_like_go_flag()
    {
        var args = ShimArguments.Parse(["--namespace=ns", "-id=x", "-address", "/a", "-debug=false"]);

        Assert.Equal("ns", args.Namespace);
        Assert.Equal("x", args.Id);
        Assert.False(args.Debug);
        Assert.Equal(ShimVerb.Serve, args.Verb);
    }

    [Fact]
    public void Parsing_stops_at_the_verb()
    {
        var args = ShimArguments.Parse(["-id", "x", "start", "-namespace", "late"]);

        Assert.Equal(ShimVerb.Start, args.Verb);
        Assert.Equal(string.Empty, args.Namespace);
    }

    [Theory]
    [InlineData(new[] { "-bogus" }, "flag provided but not defined: -bogus")]
    [InlineData(new[] { "-id" }, "flag needs an argument: -id")]
    [InlineData(new[] { "-id", "x", "run" }, "unknown verb run: expected start or delete")]
    [InlineData(new[] { "-debug=maybe" }, "invalid boolean value \"maybe\" for -debug")]
    public void Bad_command_lines_are_refused_with_go_flag_messages(string[] argv, string message)
    {
        var e = Assert.Throws<ShimUsageException>(() => ShimArguments.Parse(argv));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void Daemon_arguments_repeat_the_flags_without_the_verb_and_add_the_socket()
    {
        var args = ShimArguments.Parse(["-namespace", "ns", "-address", "/a", "-publish-binary", "/b", "-id", "x", "-debug", "start"]);

        var daemon = ShimArguments.Parse([.. args.DaemonArguments("unix:///run/containerd/s/abc")]);

        Assert.Equal(args with { Verb = ShimVerb.Serve, Socket = "unix:///run/containerd/s/abc" }, daemon);
    }
}
