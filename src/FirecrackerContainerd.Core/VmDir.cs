namespace FirecrackerContainerd.Core;

/// <summary>
/// The directory of one VM's shim: the files, sockets and FIFOs the shim, the VMM and containerd use
/// while the VM runs. It is unique per containerd namespace and VM id.
/// </summary>
public readonly record struct VmDir(string RootPath)
{
    /// <summary>
    /// The VM directory <c>&lt;base&gt;/&lt;namespace&gt;#&lt;vmID&gt;</c>, with both ids validated and the
    /// base directory's symlinks resolved first.
    /// </summary>
    public static VmDir ShimDir(string shimBaseDir, string @namespace, string vmId)
    {
        ArgumentNullException.ThrowIfNull(shimBaseDir);
        ValidatePrefixed("invalid namespace", @namespace);
        ValidatePrefixed("invalid vm id", vmId);

        string resolved;
        try
        {
            resolved = Interop.Realpath(shimBaseDir);
        }
        catch (UnixIOException e)
        {
            throw new UnixIOException(
                e.Errno, $"failed evaluating any symlinks in path {GoText.Quote(shimBaseDir)}: {e.Message}");
        }

        return new VmDir(GoPath.Join(resolved, @namespace + "#" + vmId));
    }

    /// <summary>Creates the directory (mode 0700) and its parents; does nothing when it exists.</summary>
    public void Mkdir()
    {
        Directory.CreateDirectory(RootPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    /// <summary>The shim address file; containerd reads it (through the bundle link) to reconnect after a restart.</summary>
    public string AddrFilePath => GoPath.Join(RootPath, WellKnownNames.ShimAddrFileName);

    /// <summary>The FIFO the shim writes its log to; a link to the one containerd made in the bundle.</summary>
    public string LogFifoPath => GoPath.Join(RootPath, WellKnownNames.ShimLogFifoName);

    /// <summary>
    /// Opens the shim's log FIFO write-only without blocking the caller; writes wait until containerd reads.
    /// </summary>
    public Task<FifoStream> OpenLogFifoAsync(CancellationToken cancellationToken)
    {
        return Fifo.OpenAsync(LogFifoPath, FifoMode.Write | FifoMode.NonBlocking, UnixFileMode.UserWrite, cancellationToken);
    }

    /// <summary>The Unix socket on which the Firecracker VMM serves its API.</summary>
    public string FirecrackerSockPath => GoPath.Join(RootPath, WellKnownNames.FirecrackerSockName);

    /// <summary><see cref="FirecrackerSockPath"/> relative to the working directory (socket paths are limited to 108 bytes).</summary>
    public string FirecrackerSockRelPath() => RelPathTo(FirecrackerSockPath);

    /// <summary>The hybrid vsock Unix socket through which the runtime reaches the VM's agent.</summary>
    public string FirecrackerVSockPath => GoPath.Join(RootPath, WellKnownNames.FirecrackerVSockName);

    /// <summary><see cref="FirecrackerVSockPath"/> relative to the working directory.</summary>
    public string FirecrackerVSockRelPath() => RelPathTo(FirecrackerVSockPath);

    /// <summary>The FIFO the VMM writes its log to.</summary>
    public string FirecrackerLogFifoPath => GoPath.Join(RootPath, WellKnownNames.FirecrackerLogFifoName);

    /// <summary>The FIFO the VMM writes its metrics to.</summary>
    public string FirecrackerMetricsFifoPath => GoPath.Join(RootPath, WellKnownNames.FirecrackerMetricsFifoName);

    /// <summary>The link in this directory to the bundle of container <paramref name="containerId"/>.</summary>
    public BundleDir BundleLink(string containerId)
    {
        try
        {
            Identifiers.Validate(containerId);
        }
        catch (InvalidIdentifierException e)
        {
            throw InvalidIdentifierException.Wrap($"invalid container id {GoText.Quote(containerId)}", e);
        }

        return new BundleDir(GoPath.Join(RootPath, containerId));
    }

    /// <summary>Links <see cref="BundleLink"/> to the container's bundle directory.</summary>
    public void CreateBundleLink(string containerId, BundleDir bundleDir)
    {
        BundleDir link = BundleLink(containerId);
        CreateSymlink(bundleDir.RootPath, link.RootPath, "bundle");
    }

    /// <summary>
    /// Links the bundle's address file to this directory's, so containerd finds the VM's shim from any of
    /// its containers. Needs <see cref="CreateBundleLink"/> first.
    /// </summary>
    public void CreateAddressLink(string containerId)
    {
        BundleDir link = BundleLink(containerId);
        CreateSymlink(AddrFilePath, link.AddrFilePath, "shim address file");
    }

    /// <summary>Links this directory's log FIFO to the one containerd created in the container's bundle.</summary>
    public void CreateShimLogFifoLink(string containerId)
    {
        BundleDir link = BundleLink(containerId);
        CreateSymlink(link.LogFifoPath, LogFifoPath, "shim log fifo");
    }

    /// <summary>Writes the shim's socket address to <see cref="AddrFilePath"/> atomically.</summary>
    public void WriteAddress(string shimSocketAddress)
    {
        ShimAddress.Write(AddrFilePath, shimSocketAddress);
    }

    private static void ValidatePrefixed(string prefix, string id)
    {
        try
        {
            Identifiers.Validate(id);
        }
        catch (InvalidIdentifierException e)
        {
            throw InvalidIdentifierException.Wrap(prefix, e);
        }
    }

    private static void CreateSymlink(string oldPath, string newPath, string what)
    {
        int errno = Interop.Symlink(oldPath, newPath);
        if (errno != 0)
        {
            throw new UnixIOException(
                errno,
                $"failed to create {what} symlink from \"{newPath}\"->\"{oldPath}\": symlink {oldPath} {newPath}: {Interop.ErrnoText(errno)}");
        }
    }

    private static string RelPathTo(string absPath)
    {
        string cwd = Directory.GetCurrentDirectory();
        return Path.GetRelativePath(cwd, absPath);
    }
}
