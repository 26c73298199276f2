using System.Globalization;
using System.Text;

namespace FirecrackerContainerd.Vsock.Tests.Vm;

/// <summary>Lists an uncompressed newc cpio archive (an initramfs), failing on anything else.</summary>
internal static class NewcArchive
{
    private const int HeaderSize = 110;

    /// <summary>Each member's path (without a leading "./") and size, up to the trailer.</summary>
    public static Dictionary<string, int> Read(ReadOnlySpan<byte> archive)
    {
        var members = new Dictionary<string, int>(StringComparer.Ordinal);
        int offset = 0;
        while (true)
        {
            Assert.True(offset + HeaderSize <= archive.Length, $"the archive ends at {offset} without a trailer");
            ReadOnlySpan<byte> header = archive.Slice(offset, HeaderSize);
            Assert.True(header[..6].SequenceEqual("070701"u8), $"no newc header at {offset} (compressed, or not a cpio archive)");
            int fileSize = Field(header, 6);
            int nameSize = Field(header, 11);
            string name = Encoding.ASCII.GetString(archive.Slice(offset + HeaderSize, nameSize - 1));
            if (name == "TRAILER!!!")
            {
                return members;
            }

            members[name.StartsWith("./", StringComparison.Ordinal) ? name[2..] : name] = fileSize;
            offset = Align4(Align4(offset + HeaderSize + nameSize) + fileSize);
        }
    }

    // The header's 13 fields after the magic are 8 hexadecimal digits each.
    private static int Field(ReadOnlySpan<byte> header, int index) =>
        int.Parse(Encoding.ASCII.GetString(header.Slice(6 + (index * 8), 8)), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static int Align4(int value) => (value + 3) & ~3;
}
