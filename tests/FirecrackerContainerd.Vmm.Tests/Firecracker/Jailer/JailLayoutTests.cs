using System.Diagnostics;
using FirecrackerContainerd.Vmm.Firecracker.Jailer;

namespace FirecrackerContainerd.Vmm.Tests.Firecracker.Jailer;

/// <summary>The jail tree and both drive expose policies, with real files, owners and (as root) real bind mounts.</summary>
public sealed class JailLayoutTests : IDisposable
{
    private const uint Uid = 901_234;
    private readonly TempDir _dir = new();

    public void Dispose()
    {
        // A failed assertion must not leave a bind mount behind on the host.
        JailMounts.UnmountAllUnder(_dir.Path);
        _dir.Dispose();
    }

    private JailLayout Layout(DriveExposePolicy policy) => new(_dir.Combine("jail"), "firecracker", "vm1-0123456789abcdef", Uid, Uid, policy);

    [Fact]
    public void Copy_puts_a_copy_of_every_file_owned_by_the_vm_inside_the_root_and_leaves_the_originals_alone()
    {
        using var layout = Layout(DriveExposePolicy.Copy);
        var spec = TestSpecs.Full(_dir);
        File.WriteAllText(spec.Drives[1].HostPath, "stub0 bytes");

        layout.Create();
        var jailed = layout.StageSpec(spec);

        Assert.Equal(_dir.Combine("jail", "firecracker", "vm1-0123456789abcdef", "root"), layout.RootDir);
        Assert.Equal("/kernel", jailed.Boot.KernelImagePath);
        Assert.Equal("/initrd", jailed.Boot.InitrdPath);
        Assert.Equal(["/drive_root", "/drive_stub0", "/drive_stub1"], jailed.Drives.Select(d => d.HostPath));
        Assert.Equal($"{Uid}:{Uid}", Owner(layout.RootDir));
        foreach (var (original, inJail) in new[] { (spec.Boot.KernelImagePath, "/kernel"), (spec.Boot.InitrdPath!, "/initrd") }
                     .Concat(spec.Drives.Zip(jailed.Drives, (o, j) => (o.HostPath, j.HostPath))))
        {
            string host = layout.HostPath(inJail);
            Assert.StartsWith(layout.RootDir + "/", host, StringComparison.Ordinal);
            Assert.Equal($"{Uid}:{Uid}", Owner(host));
            Assert.NotEqual(Stat("%i", original), Stat("%i", host));
            Assert.Equal("0:0", Owner(original));
            Assert.Equal(File.ReadAllBytes(original), File.ReadAllBytes(host));
        }

        Assert.Empty(JailMounts.Under(_dir.Path));
    }

    [Fact]
    public void Copy_keeps_a_sparse_drive_sparse()
    {
        using var layout = Layout(DriveExposePolicy.Copy);
        layout.Create();
        string stub = _dir.Combine("layer-slot");
        using (var file = File.Create(stub))
        {
            file.SetLength(4L << 30);
            file.Position = 3L << 30;
            file.Write("data in the middle"u8);
        }

        string inJail = layout.StageFile(stub, "drive_layer0", readOnly: true);

        string host = layout.HostPath(inJail);
        Assert.Equal(4L << 30, new FileInfo(host).Length);
        Assert.True(long.Parse(Stat("%b", host)) < 1024, $"{Stat("%b", host)} blocks allocated for a file with 18 bytes of data");
        using var copy = File.OpenRead(host);
        copy.Position = 3L << 30;
        var read = new byte[18];
        copy.ReadExactly(read);
        Assert.Equal("data in the middle"u8.ToArray(), read);
    }

    [Fact]
    public void A_patched_drive_gets_a_new_name_and_the_one_it_replaces_goes_once_committed()
    {
        using var layout = Layout(DriveExposePolicy.Copy);
        layout.Create();
        layout.CommitDrive("stub0", layout.StageDrive("stub0", _dir.File("a.img", 10), readOnly: false));

        string second = layout.StageDrive("stub0", _dir.File("b.img", 20), readOnly: false);
        Assert.True(File.Exists(layout.HostPath("/drive_stub0")), "the old file stays until Firecracker has switched");
        layout.CommitDrive("stub0", second);
        string failed = layout.StageDrive("stub0", _dir.File("c.img", 30), readOnly: false);
        layout.Discard(failed);

        Assert.Equal("/drive_stub0-1", second);
        Assert.Equal("/drive_stub0-2", failed);
        Assert.False(File.Exists(layout.HostPath("/drive_stub0")));
        Assert.Equal(20, new FileInfo(layout.HostPath(second)).Length);
        Assert.False(File.Exists(layout.HostPath(failed)));
        Assert.False(File.Exists(layout.HostPath("/drive_stub0-1.staging")));
    }

    [Fact]
    public void Bind_mounts_each_file_read_only_when_the_drive_is_and_unmounts_everything_at_the_end()
    {
        var layout = Layout(DriveExposePolicy.Bind);
        var spec = TestSpecs.Full(_dir);
        File.WriteAllText(spec.Drives[0].HostPath, "shared root drive");
        layout.Create();

        var jailed = layout.StageSpec(spec);

        string rootDrive = layout.HostPath(jailed.Drives[0].HostPath);
        string stub = layout.HostPath(jailed.Drives[1].HostPath);
        Assert.Equal(["/drive_root", "/drive_stub0", "/drive_stub1"], jailed.Drives.Select(d => d.HostPath));
        Assert.Contains(rootDrive, JailMounts.Under(layout.RootDir));
        Assert.Contains(layout.HostPath("/kernel"), JailMounts.Under(layout.RootDir));
        Assert.Equal(Stat("%i", spec.Drives[0].HostPath), Stat("%i", rootDrive));
        Assert.Equal("shared root drive", File.ReadAllText(rootDrive));
        var readOnly = Assert.ThrowsAny<IOException>(() => File.OpenWrite(rootDrive).Dispose());
        Assert.Contains("Read-only file system", readOnly.Message, StringComparison.Ordinal);
        Assert.Equal("0:0", Owner(spec.Drives[0].HostPath));
        File.WriteAllText(stub, "written by the guest");
        Assert.Equal("written by the guest", File.ReadAllText(spec.Drives[1].HostPath));
        Assert.Equal($"{Uid}:{Uid}", Owner(spec.Drives[1].HostPath));

        layout.Dispose();

        Assert.Empty(JailMounts.Under(_dir.Path));
        Assert.False(Directory.Exists(layout.Directory));
        Assert.Equal("shared root drive", File.ReadAllText(spec.Drives[0].HostPath));
        Assert.Equal("written by the guest", File.ReadAllText(spec.Drives[1].HostPath));
    }

    /// <summary>
    /// A drive patched after the jailer started: the jailer's namespace is a slave copy of ours (MS_SLAVE|MS_REC, then a
    /// recursive bind of the root onto itself); the root being a shared mount, the new bind reaches it and the old
    /// one's unmount does too. The stand-in does exactly those mount steps in its own mount namespace.
    /// </summary>
    [Fact]
    public async Task Bind_reaches_a_running_jailers_mount_namespace_for_a_drive_patched_later()
    {
        using var layout = Layout(DriveExposePolicy.Bind);
        layout.Create();
        layout.CommitDrive("stub0", layout.StageDrive("stub0", WriteFile("first.img", "first"), readOnly: false));
        using var jail = Process.Start(new ProcessStartInfo("unshare",
            ["--mount", "--propagation", "slave", "sh", "-c", $"mount --rbind '{layout.RootDir}' '{layout.RootDir}' && echo ready && exec sleep 60"])
        {
            RedirectStandardOutput = true,
        })!;
        try
        {
            Assert.Equal("ready", await jail.StandardOutput.ReadLineAsync());

            string second = layout.StageDrive("stub0", WriteFile("second.img", "second"), readOnly: false);
            layout.CommitDrive("stub0", second);

            Assert.Equal("second", InJail(jail.Id, layout.HostPath(second)));
            Assert.NotEqual("first", InJail(jail.Id, layout.HostPath("/drive_stub0")));
            Assert.Single(JailMounts.Under(layout.RootDir), p => p.EndsWith("/drive_stub0-1", StringComparison.Ordinal));
        }
        finally
        {
            jail.Kill();
            await jail.WaitForExitAsync();
        }
    }

    [Fact]
    public void Clearing_a_jail_a_crashed_shim_left_unmounts_its_binds_before_deleting()
    {
        var crashed = Layout(DriveExposePolicy.Bind);
        crashed.Create();
        string image = WriteFile("container.img", "keep me");
        crashed.StageFile(image, "drive_stub0", readOnly: false);
        Assert.NotEmpty(JailMounts.Under(crashed.Directory));

        JailLayout.Clear(crashed.Directory);

        Assert.Empty(JailMounts.Under(_dir.Path));
        Assert.False(Directory.Exists(crashed.Directory));
        Assert.Equal("keep me", File.ReadAllText(image));
    }

    [Fact]
    public void Mounts_under_a_linked_jail_base_are_found_and_removed()
    {
        string real = Directory.CreateDirectory(_dir.Combine("real-base")).FullName;
        string linked = _dir.Combine("linked-base");
        Directory.CreateSymbolicLink(linked, real);
        var layout = new JailLayout(linked, "firecracker", "vm1-0123456789abcdef", Uid, Uid, DriveExposePolicy.Bind);
        layout.Create();
        layout.StageFile(WriteFile("image", "x"), "drive_stub0", readOnly: true);

        Assert.NotEmpty(JailMounts.Under(layout.Directory));
        layout.Dispose();

        Assert.Empty(JailMounts.Under(_dir.Path));
        Assert.False(Directory.Exists(Path.Combine(real, "firecracker", "vm1-0123456789abcdef")));
    }

    [Fact]
    public void Paths_cannot_escape_the_jail()
    {
        var layout = Layout(DriveExposePolicy.Copy);

        Assert.Throws<ArgumentException>(() => layout.HostPath("../../etc/passwd"));
        Assert.Throws<ArgumentException>(() => layout.StageFile(_dir.File("x"), "../x", readOnly: true));
        Assert.Equal(layout.RootDir + "/firecracker.vsock", layout.HostPath("firecracker.vsock"));
    }

    private string WriteFile(string name, string text)
    {
        string path = _dir.Combine(name);
        File.WriteAllText(path, text);
        return path;
    }

    // cat inside the stand-in jail's mount namespace; an unmounted placeholder reads empty.
    private static string InJail(int pid, string path)
    {
        using var cat = Process.Start(new ProcessStartInfo("nsenter", [$"--target={pid}", "--mount", "cat", path]) { RedirectStandardOutput = true })!;
        string text = cat.StandardOutput.ReadToEnd();
        cat.WaitForExit();
        return cat.ExitCode == 0 ? text : $"cat failed with {cat.ExitCode}";
    }

    internal static string Owner(string path) => Stat("%u:%g", path);

    internal static string Stat(string format, string path)
    {
        using var stat = Process.Start(new ProcessStartInfo("stat", ["-c", format, path]) { RedirectStandardOutput = true })!;
        var text = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        Assert.Equal(0, stat.ExitCode);
        return text;
    }
}
