using System.Text.RegularExpressions;
using FirecrackerContainerd.Agent.Native;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Native;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Drives;

/// <summary>
/// Mounts the drives the host patched (container rootfs images, and the VM's drive mounts). Stub drives are recognised by their
/// content at start, before any patch, so a drive id maps to its block device for the VM's lifetime.
/// </summary>
internal sealed partial class DriveMounter : IMountedDrives
{
    /// <summary>The ttrpc service name.</summary>
    public const string ServiceName = ServiceNames.DriveMounter;

    private const nuint BLKFLSBUF = 0x1261;
    private const int MaxPathLength = 4096;

    /// <summary>How long MountDrive waits for a patched drive to show more than the stub's single sector.</summary>
    private static readonly TimeSpan PatchedCapacityWait = TimeSpan.FromSeconds(5);

    private readonly Dictionary<string, string> _devices;
    private readonly Dictionary<string, string> _mounted = new(StringComparer.Ordinal);

    // Each overlay by its mount point: the drives under it, and the tmpfs holding its upper and work directories.
    private readonly Dictionary<string, (string[] Lowers, string Scratch)> _overlays = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    private readonly string _sysBlock;

    private DriveMounter(Dictionary<string, string> devices, string sysBlock)
    {
        _devices = devices;
        _sysBlock = sysBlock;
    }

    /// <summary>Stub drive ids found, mapped to their devices.</summary>
    public IReadOnlyDictionary<string, string> Devices => _devices;

    /// <summary>Reads the first sector of every virtio block device under <paramref name="sysBlock"/>.</summary>
    public static DriveMounter Scan(string sysBlock = "/sys/block", string dev = "/dev")
    {
        var devices = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Directory.Exists(sysBlock))
        {
            foreach (string entry in Directory.EnumerateFileSystemEntries(sysBlock, "vd*").Order(StringComparer.Ordinal))
            {
                string device = Path.Combine(dev, Path.GetFileName(entry));
                try
                {
                    using FileStream file = File.OpenRead(device);
                    byte[] sector = new byte[StubDrive.SectorSize];
                    int n = file.ReadAtLeast(sector, sector.Length, throwOnEndOfStream: false);
                    if (StubDrive.IsStubDrive(sector.AsSpan(0, n)))
                    {
                        devices[StubDrive.ParseContent(sector.AsSpan(0, n))] = device;
                    }
                }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"fc-agent: skipping {device}: {e.Message}");
                }
            }
        }

        return new DriveMounter(devices, sysBlock);
    }

    /// <inheritdoc/>
    public string? MountPointOf(string driveId)
    {
        lock (_gate)
        {
            return _mounted.GetValueOrDefault(driveId);
        }
    }

    public void Register(TtrpcServiceRegistry registry)
    {
        registry
            .AddUnary<MountDriveRequest, Empty>(ServiceName, "MountDrive", MountDriveRequest.Parser, (r, c) => MountAsync(r, c.CancellationToken))
            .AddUnary<UnmountDriveRequest, Empty>(ServiceName, "UnmountDrive", UnmountDriveRequest.Parser, (r, _) => Task.FromResult(Unmount(r)))
            .AddUnary<MountOverlayRequest, Empty>(ServiceName, "MountOverlay", MountOverlayRequest.Parser, (r, _) => Task.FromResult(MountOverlay(r)))
            .AddUnary<UnmountOverlayRequest, Empty>(ServiceName, "UnmountOverlay", UnmountOverlayRequest.Parser, (r, _) => Task.FromResult(UnmountOverlay(r)));
    }

    // A patch reaches the guest as a capacity change that a kernel worker applies; the host's MountDrive can
    // overtake it, and a device that still has the stub's one sector cannot hold a file system.
    private async Task<Empty> MountAsync(MountDriveRequest request, CancellationToken cancellationToken)
    {
        if (_devices.TryGetValue(request.DriveID, out string? device))
        {
            string sizeFile = Path.Combine(_sysBlock, Path.GetFileName(device), "size");
            long deadline = Environment.TickCount64 + (long)PatchedCapacityWait.TotalMilliseconds;
            while (ReadSectors(sizeFile) is 0 or 1 && Environment.TickCount64 < deadline)
            {
                await Task.Delay(10, cancellationToken).ConfigureAwait(false);
            }
        }

        return Mount(request);
    }

    private static long ReadSectors(string sizeFile)
    {
        try
        {
            return long.TryParse(File.ReadAllText(sizeFile).Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long sectors) ? sectors : -1;
        }
        catch (IOException)
        {
            return -1;
        }
    }

    private static void CheckDestination(string operation, string destination)
    {
        if (!Path.IsPathRooted(destination) || destination.Split('/').Contains("..")
            || destination.Length > MaxPathLength || destination.Any(char.IsControl))
        {
            throw new TtrpcException(StatusCode.InvalidArgument,
                $"{operation}: destination \"{destination}\" must be an absolute path without .. or control characters");
        }
    }

    private Empty Mount(MountDriveRequest request)
    {
        CheckDestination($"mount drive {request.DriveID}", request.DestinationPath);

        string fsType = request.FilesytemType.Length == 0 ? "ext4" : request.FilesytemType;
        if (!FsTypePattern().IsMatch(fsType))
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"mount drive {request.DriveID}: file system type \"{fsType}\" must be 1..32 of a-z and 0-9");
        }

        MountOptions options;
        try
        {
            options = MountOptions.Parse(request.Options);
        }
        catch (ArgumentException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"mount drive {request.DriveID}: {e.Message}", e);
        }

        lock (_gate)
        {
            if (!_devices.TryGetValue(request.DriveID, out string? device))
            {
                throw new TtrpcException(StatusCode.NotFound, $"mount drive {request.DriveID}: no such stub drive (found: {string.Join(", ", _devices.Keys)})");
            }

            if (_mounted.ContainsKey(request.DriveID))
            {
                throw new TtrpcException(StatusCode.AlreadyExists, $"mount drive {request.DriveID}: already mounted");
            }

            // The buffer cache may still hold the stub's first sector: drop it before reading the new image.
            int fd = Interop.Open(device, Libc.O_RDONLY);
            try
            {
                Interop.Ioctl(fd, BLKFLSBUF, device);
            }
            finally
            {
                Libc.CloseQuietly(fd);
            }

            try
            {
                Directory.CreateDirectory(request.DestinationPath);
                Interop.Mount(device, request.DestinationPath, fsType, options.Flags, options.Data);
            }
            catch (IOException e)
            {
                throw new TtrpcException(StatusCode.Internal, $"mount drive {request.DriveID}: {e.Message}", e);
            }

            _mounted[request.DriveID] = request.DestinationPath;
            return new Empty();
        }
    }

    [GeneratedRegex("^[a-z0-9]{1,32}\\z")]
    private static partial Regex FsTypePattern();

    private Empty Unmount(UnmountDriveRequest request)
    {
        lock (_gate)
        {
            if (!_mounted.TryGetValue(request.DriveID, out string? target))
            {
                throw new TtrpcException(StatusCode.NotFound, $"unmount drive {request.DriveID}: not mounted");
            }

            if (_overlays.FirstOrDefault(o => o.Value.Lowers.Contains(request.DriveID, StringComparer.Ordinal)).Key is { } overlay)
            {
                throw new TtrpcException(StatusCode.FailedPrecondition, $"unmount drive {request.DriveID}: the overlay at {overlay} still stands on it");
            }

            try
            {
                Interop.SyncFileSystem(target);
                Interop.Unmount(target);
            }
            catch (IOException e)
            {
                throw new TtrpcException(StatusCode.Internal, $"unmount drive {request.DriveID}: {e.Message}", e);
            }

            _mounted.Remove(request.DriveID);
            return new Empty();
        }
    }

    /// <summary>
    /// Mounts an overlay at the request's destination whose lower directories are the mount points of drives mounted
    /// before (top first), and whose upper and work directories live on a tmpfs of their own beside it
    /// (<c>&lt;destination&gt;.upper</c>), limited to the request's size: a container's writes stay in guest memory.
    /// </summary>
    private Empty MountOverlay(MountOverlayRequest request)
    {
        string destination = request.DestinationPath;
        string operation = $"mount overlay {destination}";
        CheckDestination(operation, destination);
        if (request.LowerDriveIDs.Count is 0 or > MountOptions.MaxOptions)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"{operation}: {request.LowerDriveIDs.Count} lower drives, not 1..{MountOptions.MaxOptions}");
        }

        lock (_gate)
        {
            if (_overlays.ContainsKey(destination))
            {
                throw new TtrpcException(StatusCode.AlreadyExists, $"{operation}: already mounted");
            }

            var lowers = new List<string>();
            foreach (string driveId in request.LowerDriveIDs)
            {
                if (!_mounted.TryGetValue(driveId, out string? lower))
                {
                    throw new TtrpcException(StatusCode.FailedPrecondition, $"{operation}: drive {driveId} is not mounted");
                }

                // The mount points end up in overlayfs's option string, where ',' and ':' separate.
                if (lower.Any(c => c is ',' or ':' or '\\'))
                {
                    throw new TtrpcException(StatusCode.InvalidArgument, $"{operation}: drive {driveId}'s mount point {lower} holds ',', ':' or '\\'");
                }

                lowers.Add(lower);
            }

            string scratch = destination + ".upper";
            string upper = Path.Combine(scratch, "upper");
            string work = Path.Combine(scratch, "work");
            bool scratchMounted = false;
            try
            {
                Directory.CreateDirectory(scratch);
                Interop.Mount("tmpfs", scratch, "tmpfs", 0, request.UpperSizeMib == 0 ? "mode=0700" : $"mode=0700,size={request.UpperSizeMib}m");
                scratchMounted = true;
                Directory.CreateDirectory(upper);
                Directory.CreateDirectory(work);
                Directory.CreateDirectory(destination);
                Interop.Mount("overlay", destination, "overlay", 0, $"lowerdir={string.Join(':', lowers)},upperdir={upper},workdir={work}");
            }
            catch (IOException e)
            {
                if (scratchMounted)
                {
                    UnmountQuietly(scratch);
                }

                throw new TtrpcException(StatusCode.Internal, $"{operation}: {e.Message}", e);
            }

            _overlays[destination] = ([.. request.LowerDriveIDs], scratch);
            return new Empty();
        }
    }

    /// <summary>Unmounts an overlay <see cref="MountOverlay"/> made, then the tmpfs under it: the container's writes go.</summary>
    private Empty UnmountOverlay(UnmountOverlayRequest request)
    {
        string operation = $"unmount overlay {request.DestinationPath}";
        lock (_gate)
        {
            if (!_overlays.TryGetValue(request.DestinationPath, out var overlay))
            {
                throw new TtrpcException(StatusCode.NotFound, $"{operation}: not mounted");
            }

            try
            {
                Interop.Unmount(request.DestinationPath);
                _overlays.Remove(request.DestinationPath);
                Interop.Unmount(overlay.Scratch);
                Directory.Delete(overlay.Scratch);
            }
            catch (IOException e)
            {
                throw new TtrpcException(StatusCode.Internal, $"{operation}: {e.Message}", e);
            }

            return new Empty();
        }
    }

    private static void UnmountQuietly(string target)
    {
        try
        {
            Interop.Unmount(target);
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"fc-agent: unmount {target}: {e.Message}");
        }
    }
}
