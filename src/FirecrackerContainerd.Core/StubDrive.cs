using System.Text;

namespace FirecrackerContainerd.Core;

/// <summary>
/// Upstream's stub drive format: a placeholder block device that a container's image later replaces.
/// Layout: the 8 magic bytes, one length byte, the drive id, zero padding to a whole 512-byte sector
/// (a VMM shows no drive smaller than a sector and reads whole sectors).
/// </summary>
public static class StubDrive
{
    /// <summary>The sector size drives are padded to.</summary>
    public const int SectorSize = 512;

    /// <summary>The longest drive id the one-byte length can carry.</summary>
    public const int MaxIdLength = 0xFF;

    /// <summary>The bytes every stub drive starts with.</summary>
    public static ReadOnlySpan<byte> MagicBytes => [0xd6, 0xf4, 0xd8, 0xf5, 0xd7, 0xb1, 0xb1, 0xb1];

    /// <summary>The stub content (magic, length, id) without padding.</summary>
    public static byte[] GenerateContent(string driveId)
    {
        ArgumentNullException.ThrowIfNull(driveId);
        byte[] id = Encoding.UTF8.GetBytes(driveId);
        if (id.Length > MaxIdLength)
        {
            throw new ArgumentException(
                $"Length of drive id, {id.Length}, is too long and is limited to {MaxIdLength} bytes", nameof(driveId));
        }

        byte[] content = new byte[MagicBytes.Length + 1 + id.Length];
        MagicBytes.CopyTo(content);
        content[MagicBytes.Length] = (byte)id.Length;
        id.CopyTo(content, MagicBytes.Length + 1);
        return content;
    }

    /// <summary>Creates a new stub drive file at <paramref name="path"/> (mode 0600), padded to whole sectors.</summary>
    public static void Create(string path, string driveId)
    {
        byte[] content = GenerateContent(driveId);
        long size = (content.Length + SectorSize - 1) / SectorSize * SectorSize;
        using var file = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        file.Write(content);
        file.SetLength(size);
    }

    /// <summary>True when <paramref name="data"/> starts with the magic bytes.</summary>
    public static bool IsStubDrive(ReadOnlySpan<byte> data)
    {
        return data.Length >= MagicBytes.Length && data[..MagicBytes.Length].SequenceEqual(MagicBytes);
    }

    /// <summary>True when the file at <paramref name="path"/> is a stub drive; false for anything unreadable.</summary>
    public static bool IsStubDrive(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            Span<byte> head = stackalloc byte[8];
            return file.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) == head.Length && IsStubDrive(head);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The drive id encoded in stub content; throws <see cref="InvalidDataException"/> for anything malformed.</summary>
    public static string ParseContent(ReadOnlySpan<byte> data)
    {
        if (!IsStubDrive(data))
        {
            throw new InvalidDataException("not a stub drive: the magic bytes are missing");
        }

        if (data.Length < MagicBytes.Length + 1)
        {
            throw new InvalidDataException("stub drive is truncated before its id length");
        }

        int length = data[MagicBytes.Length];
        ReadOnlySpan<byte> id = data[(MagicBytes.Length + 1)..];
        if (id.Length < length)
        {
            throw new InvalidDataException($"stub drive id is truncated: {id.Length} of {length} bytes");
        }

        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(id[..length]);
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException("stub drive id is not valid UTF-8", e);
        }
    }
}
