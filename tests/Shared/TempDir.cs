namespace FirecrackerContainerd.TestSupport;

/// <summary>
/// A fresh directory under /tmp (a short path, so Unix sockets fit in it), removed with everything in it on dispose.
/// </summary>
internal sealed class TempDir : IDisposable
{
    /// <summary>Creates the directory.</summary>
    public TempDir() => Path = Directory.CreateTempSubdirectory("fc-test-").FullName;

    /// <summary>The directory's path.</summary>
    public string Path { get; }

    /// <summary>A path inside the directory.</summary>
    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <summary>Creates a file of <paramref name="bytes"/> zero bytes inside the directory and returns its path.</summary>
    public string File(string name, int bytes = 4096)
    {
        string path = Combine(name);
        System.IO.File.WriteAllBytes(path, new byte[bytes]);
        return path;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // A test removed it itself.
        }
        catch (IOException)
        {
            // A socket still being unlinked by an exiting process; the next run uses a new directory anyway.
        }
    }
}
