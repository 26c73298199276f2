using System.Diagnostics;
using FirecrackerContainerd.Protos.Containerd.Types;

namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>
/// An ext4 image file holding a container's root file system, made from containerd's rootfs mounts so any
/// snapshotter works: the mounts are viewed read-only on a private mount point, copied by
/// <c>mkfs.ext4 -d</c>, and unmounted again. The image is what a stub drive is patched to.
/// </summary>
/// <param name="Path">The image file.</param>
/// <param name="SizeBytes">Its size, a whole number of MiB.</param>
public sealed record RootfsImage(string Path, long SizeBytes)
{
    private const long MiB = 1L << 20;
    private const int BlockSize = 4096;
    private const int InodeSize = 256;

    // ext4's costs beyond data and inode tables: group descriptors, bitmaps, reserved GDT blocks and
    // directory slack (a few MiB plus 1 %), and the journal, whose default size grows with the file system.
    private static long OverheadBytes(long contentBytes)
    {
        long journal = contentBytes switch
        {
            <= 1L << 30 => 32 * MiB,
            <= 16L << 30 => 64 * MiB,
            _ => 256 * MiB,
        };
        return (8 * MiB) + (contentBytes / 100) + journal;
    }

    /// <summary>
    /// Builds the image at <paramref name="imagePath"/> (which must not exist) from <paramref name="mounts"/>.
    /// On any failure nothing stays mounted and neither the image nor the mount point remains.
    /// </summary>
    public static async Task<RootfsImage> CreateAsync(
        IReadOnlyList<Mount> mounts, string imagePath, RootfsImageOptions? options, CancellationToken cancellationToken)
    {
        RootfsSource source = RootfsSource.Parse(mounts);
        ArgumentException.ThrowIfNullOrEmpty(imagePath);
        options ??= RootfsImageOptions.Default;
        imagePath = System.IO.Path.GetFullPath(imagePath);

        // Claims the path before any work; a file already there is never overwritten.
        using (new FileStream(imagePath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
        }

        bool done = false;
        string work = System.IO.Path.Combine(
            options.WorkDirectory ?? System.IO.Path.GetTempPath(), "fc-rootfs-" + Guid.NewGuid().ToString("N"));
        string view = System.IO.Path.Combine(work, "rootfs");
        try
        {
            Directory.CreateDirectory(work, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            Directory.CreateDirectory(view);
            MountView(source, view);
            try
            {
                TreeUsage usage = TreeUsage.Measure(view);
                long content = usage.Bytes + (usage.Inodes * InodeSize);
                long size = RoundUp(content + OverheadBytes(content + options.FreeBytes) + options.FreeBytes, MiB);
                long inodes = usage.Inodes + options.ExtraInodes;
                await RunMkfsAsync(options.MkfsBinary, view, imagePath, size, inodes, cancellationToken).ConfigureAwait(false);
                done = true;
                return new RootfsImage(imagePath, size);
            }
            finally
            {
                UnmountView(view);
            }
        }
        finally
        {
            // rmdir, never a recursive delete: should the view still be mounted, the snapshot stays untouched.
            DeleteEmptyDirectory(view);
            DeleteEmptyDirectory(work);
            if (!done)
            {
                File.Delete(imagePath);
            }
        }
    }

    private static void DeleteEmptyDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: false);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    // Read-only, so building an image can never change the snapshot; an overlay's upper directory becomes
    // its topmost lower layer, which keeps its whiteouts and needs no work directory.
    private static void MountView(RootfsSource source, string view)
    {
        const ulong flags = Interop.MS_RDONLY | Interop.MS_NOSUID | Interop.MS_NODEV;
        if (source.IsOverlay)
        {
            string data = "lowerdir=" + string.Join(':', source.Layers) + (source.UserXattr ? ",userxattr" : string.Empty);
            Interop.Mount("overlay", view, "overlay", flags, data);
        }
        else
        {
            // A plain (not recursive) bind: mounts below the snapshot directory are not part of the image.
            Interop.Mount(source.Layers[0], view, null, Interop.MS_BIND, null);
            try
            {
                Interop.Mount(null, view, null, Interop.MS_REMOUNT | Interop.MS_BIND | flags, null);
            }
            catch
            {
                UnmountView(view);
                throw;
            }
        }

        // Nothing mounted below the view later is propagated to or from other mount namespaces.
        try
        {
            Interop.Mount(null, view, null, Interop.MS_PRIVATE, null);
        }
        catch
        {
            UnmountView(view);
            throw;
        }
    }

    private static void UnmountView(string view)
    {
        int errno = Interop.Unmount(view, 0);
        if (errno == Interop.EBUSY)
        {
            // A reader that has not let go yet (mkfs killed on cancellation): detach, the kernel finishes later.
            errno = Interop.Unmount(view, Interop.MNT_DETACH);
        }

        if (errno != 0 && errno != Interop.EINVAL)
        {
            throw new IOException($"umount2 {view}: {Interop.ErrorMessage(errno)}", errno);
        }
    }

    private static async Task RunMkfsAsync(
        string mkfs, string tree, string imagePath, long size, long inodes, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(mkfs)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        string[] args =
        [
            "-q", "-F",
            "-b", BlockSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-I", InodeSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-N", inodes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-m", "0",
            "-d", tree,
            imagePath,
            (size / 1024).ToString(System.Globalization.CultureInfo.InvariantCulture) + "k",
        ];
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new IOException($"mkfs {imagePath}: {mkfs} did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new IOException($"mkfs {imagePath}: cannot run {mkfs} (apt-get install e2fsprogs): {e.Message}", e);
        }

        using (process)
        {
            process.StandardInput.Close();
            Task<string> stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
            Task<string> stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
            try
            {
                await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill();
                await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
                throw;
            }

            string output = ((await stdout.ConfigureAwait(false)) + (await stderr.ConfigureAwait(false))).Trim();
            if (process.ExitCode != 0)
            {
                throw new IOException(
                    $"mkfs {imagePath} ({size / MiB} MiB, {inodes} inodes) from {tree}: {mkfs} exited with status {process.ExitCode}: {output}");
            }
        }
    }

    private static long RoundUp(long value, long unit) => (value + unit - 1) / unit * unit;

    /// <summary>What a tree occupies in ext4 blocks and inodes.</summary>
    private readonly record struct TreeUsage(long Bytes, long Inodes)
    {
        public static TreeUsage Measure(string root)
        {
            long bytes = BlockSize;
            long inodes = 1;
            var options = new EnumerationOptions
            {
                RecurseSubdirectories = true,
                AttributesToSkip = 0,
                IgnoreInaccessible = false,
                ReturnSpecialDirectories = false,
            };
            foreach (FileSystemInfo entry in new DirectoryInfo(root).EnumerateFileSystemInfos("*", options))
            {
                inodes++;
                if (entry.LinkTarget is { } target)
                {
                    // Targets up to 60 bytes live in the inode itself.
                    bytes += target.Length > 60 ? BlockSize : 0;
                }
                else if (entry is FileInfo file)
                {
                    bytes += RoundUp(file.Length, BlockSize);
                }
                else
                {
                    bytes += BlockSize;
                }
            }

            return new TreeUsage(bytes, inodes);
        }
    }
}
