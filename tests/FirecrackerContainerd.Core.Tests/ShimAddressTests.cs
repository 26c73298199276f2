using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Tests;

public sealed class ShimAddressTests : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void Write_then_Read_round_trips_without_a_newline()
    {
        string path = _tmp.Combine("address");
        ShimAddress.Write(path, "unix:///run/containerd/s/abc");
        Assert.Equal("unix:///run/containerd/s/abc", ShimAddress.Read(path));
        Assert.Equal("unix:///run/containerd/s/abc"u8.ToArray(), File.ReadAllBytes(path));
    }

    [Theory]
    [InlineData("unix:///a\n")]
    [InlineData("unix:///a\0b")]
    [InlineData("")]
    public void Write_refuses_addresses_containerd_could_not_read(string address)
    {
        Assert.ThrowsAny<ArgumentException>(() => ShimAddress.Write(_tmp.Combine("address"), address));
        Assert.False(File.Exists(_tmp.Combine("address")));
    }

    [Fact]
    public void Read_names_the_file_when_it_is_missing()
    {
        string path = _tmp.Combine("nope");
        var e = Assert.Throws<IOException>(() => ShimAddress.Read(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_writers_never_leave_a_torn_file()
    {
        string path = _tmp.Combine("address");
        string[] addresses = Enumerable.Range(0, 8)
            .Select(i => "unix:///run/containerd/s/" + new string((char)('a' + i), 10 + (i * 20)))
            .ToArray();
        ShimAddress.Write(path, addresses[0]);
        var valid = addresses.ToHashSet();
        using var stop = new CancellationTokenSource();

        Task[] writers = addresses.Select(a => Task.Run(() =>
        {
            for (int i = 0; i < 300; i++)
            {
                ShimAddress.Write(path, a);
            }
        })).ToArray();
        Task<int> reader = Task.Run(() =>
        {
            int reads = 0;
            while (!stop.IsCancellationRequested)
            {
                string seen = ShimAddress.Read(path);
                Assert.Contains(seen, valid);
                reads++;
            }

            return reads;
        });

        await Task.WhenAll(writers);
        await stop.CancelAsync();
        Assert.True(await reader > 0);
        Assert.Equal(["address"], Directory.GetFiles(_tmp.Path).Select(Path.GetFileName));
    }
}
