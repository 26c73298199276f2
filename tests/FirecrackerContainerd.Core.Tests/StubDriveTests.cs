using System.Text;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Tests;

public sealed class StubDriveTests : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void GenerateContent_is_magic_then_length_then_id()
    {
        byte[] expected = [0xd6, 0xf4, 0xd8, 0xf5, 0xd7, 0xb1, 0xb1, 0xb1, 3, (byte)'f', (byte)'o', (byte)'o'];
        Assert.Equal(expected, StubDrive.GenerateContent("foo"));
    }

    [Fact]
    public void GenerateContent_takes_255_bytes_and_rejects_256()
    {
        byte[] content = StubDrive.GenerateContent(new string('x', 255));
        Assert.Equal(255, content[8]);
        var e = Assert.Throws<ArgumentException>(() => StubDrive.GenerateContent(new string('x', 256)));
        Assert.StartsWith("Length of drive id, 256, is too long and is limited to 255 bytes", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("foo", false)]
    [InlineData("", false)]
    public void IsStubDrive_rejects_other_content(string content, bool expected)
    {
        Assert.Equal(expected, StubDrive.IsStubDrive(Encoding.UTF8.GetBytes(content)));
        Assert.False(StubDrive.IsStubDrive(new byte[512]));
    }

    [Fact]
    public void Create_pads_to_a_whole_sector_and_parses_back()
    {
        string path = _tmp.Combine("stub0");
        StubDrive.Create(path, "stub0");
        Assert.Equal(512, new FileInfo(path).Length);
        Assert.True(StubDrive.IsStubDrive(path));
        Assert.Equal("stub0", StubDrive.ParseContent(File.ReadAllBytes(path)));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));

        string longPath = _tmp.Combine("stub1");
        StubDrive.Create(longPath, new string('z', 255));
        Assert.Equal(512, new FileInfo(longPath).Length);
        Assert.Throws<IOException>(() => StubDrive.Create(path, "again"));
    }

    [Fact]
    public void ParseContent_rejects_truncated_and_foreign_data()
    {
        byte[] content = StubDrive.GenerateContent("abcdef");
        Assert.Throws<InvalidDataException>(() => StubDrive.ParseContent(content.AsSpan(0, 8)));
        Assert.Throws<InvalidDataException>(() => StubDrive.ParseContent(content.AsSpan(0, 11)));
        Assert.Throws<InvalidDataException>(() => StubDrive.ParseContent("not a stub"u8));
        Assert.False(StubDrive.IsStubDrive(_tmp.Combine("absent")));
    }
}
