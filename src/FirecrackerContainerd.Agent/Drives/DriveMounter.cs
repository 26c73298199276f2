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
            .AddUnary<UnmountDriveRequest, Empty>(ServiceName, "UnmountDrive", UnmountDriveRequest.Parser, (r, _) => Task.FromResult(Unmount(r)));
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

    private Empty Mount(MountDriveRequest request)
    {
        if (!Path.IsPathRooted(request.DestinationPath) || request.DestinationPath.Split('/').Contains("..")
            || request.DestinationPath.Length > MaxPathLength || request.DestinationPath.Any(char.IsControl))
        {
            throw new TtrpcException(StatusCode.InvalidArgument,
                $"mount drive {request.DriveID}: destination \"{request.DestinationPath}\" must be an absolute path without .. or control characters");
        }

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
}
