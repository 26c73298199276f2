namespace FirecrackerContainerd.TestSupport;

/// <summary>
/// A lock shared by every test process of the run (dotnet test runs test assemblies in parallel): an
/// exclusive open of a lock file, which .NET backs with flock on Linux, retried until it is free.
/// </summary>
internal sealed class CrossProcessLock : IDisposable
{
    private readonly FileStream _file;

    private CrossProcessLock(FileStream file)
    {
        _file = file;
    }

    public static async Task<CrossProcessLock> AcquireAsync(string path, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        while (true)
        {
            try
            {
                return new CrossProcessLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException)
            {
                // Held by another test process: wait for it.
                await Task.Delay(200, cancellationToken);
            }
        }
    }

    public void Dispose() => _file.Dispose();
}
