using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Tests;

/// <summary>Tests that change the process's working directory, so they run alone.</summary>
[CollectionDefinition(nameof(WorkingDirectoryUsers), DisableParallelization = true)]
public sealed class WorkingDirectoryUsers;

[Collection(nameof(WorkingDirectoryUsers))]
public sealed class VmDirRelativePathTests : IDisposable
{
    private readonly TempDir _tmp = new();
    private readonly string _savedCwd = Directory.GetCurrentDirectory();

    public void Dispose()
    {
        Directory.SetCurrentDirectory(_savedCwd);
        _tmp.Dispose();
    }

    [Fact]
    public void RelPaths_are_relative_to_the_working_directory()
    {
        VmDir dir = VmDir.ShimDir(_tmp.Path, "ns", "vm");
        dir.Mkdir();

        Directory.SetCurrentDirectory(dir.RootPath);
        Assert.Equal("firecracker.sock", dir.FirecrackerSockRelPath());
        Assert.Equal("firecracker.vsock", dir.FirecrackerVSockRelPath());

        string elsewhere = Directory.CreateDirectory(_tmp.Combine("x", "y")).FullName;
        Directory.SetCurrentDirectory(elsewhere);
        Assert.Equal("../../ns#vm/firecracker.sock", dir.FirecrackerSockRelPath());
        Assert.Equal("../../ns#vm/firecracker.vsock", dir.FirecrackerVSockRelPath());
        Assert.Equal(dir.FirecrackerSockPath, Path.GetFullPath(dir.FirecrackerSockRelPath()));
    }

    [Fact]
    public void RelPath_keeps_a_long_vm_dir_within_the_socket_path_limit()
    {
        string deep = Directory.CreateDirectory(_tmp.Combine(new string('d', 60), new string('e', 60))).FullName;
        VmDir dir = VmDir.ShimDir(deep, new string('n', 76), new string('v', 76));
        dir.Mkdir();
        Assert.True(dir.FirecrackerVSockPath.Length > 108);

        Directory.SetCurrentDirectory(dir.RootPath);
        Assert.True(dir.FirecrackerVSockRelPath().Length < 108);
    }
}
