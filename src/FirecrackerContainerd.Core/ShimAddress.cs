using System.Text;

namespace FirecrackerContainerd.Core;

/// <summary>
/// The shim address file: the socket address containerd uses to reach a running shim, written
/// atomically (temp file, then rename) and without a trailing newline, since containerd 1.6 does not trim it.
/// </summary>
public static class ShimAddress
{
    /// <summary>Atomically replaces the file at <paramref name="path"/> with <paramref name="address"/>.</summary>
    public static void Write(string path, string address)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentException.ThrowIfNullOrEmpty(address);
        if (address.Contains('\n', StringComparison.Ordinal) || address.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"shim address {GoText.Quote(address)} contains a newline or NUL", nameof(address));
        }

        // A unique temp name per writer: concurrent writers each rename a complete file, never a torn one.
        string temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var file = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            {
                file.Write(Encoding.UTF8.GetBytes(address));
                file.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            File.Delete(temp);
            throw new IOException($"failed to write shim address file {path}: {e.Message}", e);
        }
    }

    /// <summary>Reads the address in the file at <paramref name="path"/>.</summary>
    public static string Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string address;
        try
        {
            address = File.ReadAllText(path, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"failed to read shim address file {path}: {e.Message}", e);
        }

        if (address.Length == 0)
        {
            throw new InvalidDataException($"shim address file {path} is empty");
        }

        return address;
    }
}
