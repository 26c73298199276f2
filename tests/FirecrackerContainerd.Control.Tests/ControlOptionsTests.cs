using FirecrackerContainerd.Control.Configuration;

namespace FirecrackerContainerd.Control.Tests;

/// <summary>The daemon's configuration file and flags.</summary>
public sealed class ControlOptionsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("fcconf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Flags_override_the_config_file_and_keys_missing_from_it_keep_their_defaults()
    {
        string file = Path.Combine(_dir, "control.json");
        File.WriteAllText(file, "{\"socket\": \"/tmp/a.sock\", \"shimBinary\": \"/opt/shim\"}");
        var options = ControlOptions.FromArguments(["--config", file, "--socket", "/tmp/b.sock"]);
        Assert.Equal(("/tmp/b.sock", "/opt/shim", "/run/containerd/containerd.sock"), (options.SocketPath, options.ShimBinary, options.ContainerdAddress));
    }

    [Theory]
    [InlineData("{\"sokcet\": \"/tmp/a.sock\"}")]
    [InlineData("{\"socket\": \"relative.sock\"}")]
    [InlineData("not json")]
    public void A_bad_config_file_is_refused(string json)
    {
        string file = Path.Combine(_dir, "control.json");
        File.WriteAllText(file, json);
        Assert.Throws<InvalidDataException>(() => ControlOptions.FromArguments(["--config", file]));
    }

    [Fact]
    public void The_runtime_configuration_for_shims_must_be_an_existing_file()
    {
        string runtime = Path.Combine(_dir, "firecracker-runtime.json");
        File.WriteAllText(runtime, "{}");
        Assert.Equal("", ControlOptions.FromArguments(["--socket", "/tmp/b.sock"]).RuntimeConfig);
        Assert.Equal(runtime, ControlOptions.FromArguments(["--runtime-config", runtime]).RuntimeConfig);
        Assert.Throws<InvalidDataException>(() => ControlOptions.FromArguments(["--runtime-config", Path.Combine(_dir, "missing.json")]));
        Assert.Throws<InvalidDataException>(() => ControlOptions.FromArguments(["--runtime-config", "firecracker-runtime.json"]));
    }

    [Fact]
    public void An_unknown_flag_is_refused() =>
        Assert.Throws<ArgumentException>(() => ControlOptions.FromArguments(["--sockets", "/x"]));
}
