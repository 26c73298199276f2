using FirecrackerContainerd.Agent.Drives;

namespace FirecrackerContainerd.Agent.Tests;

public sealed class MountOptionsTests
{
    [Fact]
    public void Generic_options_become_flags_and_the_rest_the_file_systems_data()
    {
        MountOptions options = MountOptions.Parse(["ro", "noexec", "nosuid", "data=ordered", "noatime", "errors=remount-ro"]);

        Assert.Equal(1UL | 8 | 2 | 1024, options.Flags);
        Assert.True(options.IsReadOnly);
        Assert.Equal("data=ordered,errors=remount-ro", options.Data);
    }

    [Fact]
    public void No_options_mean_a_writable_mount_without_data()
    {
        MountOptions options = MountOptions.Parse([]);

        Assert.Equal(0UL, options.Flags);
        Assert.Null(options.Data);
    }

    [Theory]
    [InlineData(new[] { "ro", "rw" }, false)]
    [InlineData(new[] { "rw", "ro" }, true)]
    [InlineData(new[] { "noexec", "exec" }, false)]
    public void The_last_of_two_opposite_options_wins(string[] given, bool flagSet)
    {
        Assert.Equal(flagSet, MountOptions.Parse(given).Flags != 0);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ro,exec")]
    [InlineData("data=ordered\n")]
    [InlineData("a b")]
    [InlineData("uid=\u00e9")]
    public void An_option_with_a_comma_space_or_control_character_is_refused(string option)
    {
        ArgumentException e = Assert.Throws<ArgumentException>(() => MountOptions.Parse(["noatime", option]));

        Assert.Contains("mount option", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Too_many_or_too_long_options_are_refused()
    {
        Assert.Throws<ArgumentException>(() => MountOptions.Parse(Enumerable.Repeat("noatime", MountOptions.MaxOptions + 1).ToArray()));
        Assert.Throws<ArgumentException>(() => MountOptions.Parse([new string('a', MountOptions.MaxOptionLength + 1)]));
    }
}
