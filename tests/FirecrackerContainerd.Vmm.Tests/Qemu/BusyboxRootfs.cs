using FirecrackerContainerd.TestSupport;

namespace FirecrackerContainerd.Vmm.Tests.Qemu;

/// <summary>A container root file system image: Debian's static busybox, its applet links and a marker file, as ext4.</summary>
internal static class BusyboxRootfs
{
    private const string Busybox = "/bin/busybox";

    /// <summary>Builds the image at <paramref name="imagePath"/>; fails the test when busybox-static or e2fsprogs is missing.</summary>
    public static async Task CreateAsync(string imagePath, string marker, CancellationToken cancellationToken)
    {
        Assert.True(File.Exists(Busybox), $"{Busybox} is missing (apt-get install busybox-static)");
        string tree = imagePath + ".d";
        try
        {
            foreach (string dir in new[] { "bin", "proc", "dev", "sys", "tmp", "etc" })
            {
                Directory.CreateDirectory(Path.Combine(tree, dir));
            }

            File.Copy(Busybox, Path.Combine(tree, "bin", "busybox"));
            string applets = (await Tool.RunAsync(Busybox, ["--list"], "busybox-static", cancellationToken)).Stdout;
            foreach (string applet in applets.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (applet != "busybox" && !applet.Contains('/', StringComparison.Ordinal))
                {
                    File.CreateSymbolicLink(Path.Combine(tree, "bin", applet), "busybox");
                }
            }

            await File.WriteAllTextAsync(Path.Combine(tree, "marker"), marker, cancellationToken);
            await Tool.RunAsync("mkfs.ext4", ["-q", "-F", "-b", "4096", "-m", "0", "-d", tree, imagePath, "16M"], "e2fsprogs", cancellationToken);
        }
        finally
        {
            Directory.Delete(tree, recursive: true);
        }
    }
}
