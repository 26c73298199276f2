using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>
/// Builds a tiny OCI image layout tar from Debian's static busybox, so tests import an image without a registry.
/// </summary>
internal static class BusyboxImage
{
    public const string Name = "docker.io/library/fctest-busybox:latest";

    /// <summary>The working directory the image's config names (its layer has it).</summary>
    public const string WorkingDir = "/srv/work";

    /// <summary>A variable the image's config sets, beside PATH.</summary>
    public const string EnvVariable = "FCTEST_IMAGE_ENV";

    /// <summary>Its value.</summary>
    public const string EnvValue = "set by the image";

    private const string BusyboxPath = "/bin/busybox";

    // An image config leaves out what it does not set (the pause image has no Cmd, busybox no Entrypoint).
    private static readonly JsonSerializerOptions OmitNulls = new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    /// <summary>
    /// The pause image a CRI sandbox runs: busybox's shell waiting for SIGTERM or SIGINT (then it exits 0), the
    /// way Kubernetes' pause binary holds a pod's namespaces.
    /// </summary>
    public const string PauseName = "docker.io/library/fctest-pause:latest";

    public static void Write(string tarPath) => Write(tarPath, Name, ["/bin/sh"], null);

    /// <summary>Writes the pause image (<see cref="PauseName"/>).</summary>
    public static void WritePause(string tarPath) =>
        Write(tarPath, PauseName, null, ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]);

    private static void Write(string tarPath, string name, string[]? cmd, string[]? entrypoint)
    {
        if (!File.Exists(BusyboxPath))
        {
            throw new InvalidOperationException(
                $"{BusyboxPath} is missing: install the Debian package busybox-static (apt-get install busybox-static) to build the test image");
        }

        byte[] layer = BuildLayer();
        string layerDigest = Digest(layer);
        byte[] config = Json(new
        {
            architecture = "amd64",
            os = "linux",
            config = new
            {
                Cmd = cmd,
                Entrypoint = entrypoint,
                Env = new[] { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", $"{EnvVariable}={EnvValue}" },
                WorkingDir,
            },
            rootfs = new { type = "layers", diff_ids = new[] { layerDigest } },
        });
        byte[] manifest = Json(new
        {
            schemaVersion = 2,
            mediaType = "application/vnd.oci.image.manifest.v1+json",
            config = new { mediaType = "application/vnd.oci.image.config.v1+json", digest = Digest(config), size = config.Length },
            layers = new[] { new { mediaType = "application/vnd.oci.image.layer.v1.tar", digest = layerDigest, size = layer.Length } },
        });
        var annotations = new Dictionary<string, string> { ["io.containerd.image.name"] = name };
        byte[] index = Json(new
        {
            schemaVersion = 2,
            manifests = new[]
            {
                new
                {
                    mediaType = "application/vnd.oci.image.manifest.v1+json",
                    digest = Digest(manifest),
                    size = manifest.Length,
                    annotations,
                    platform = new { architecture = "amd64", os = "linux" },
                },
            },
        });

        using var file = File.Create(tarPath);
        using var tar = new TarWriter(file, TarEntryFormat.Pax);
        Add(tar, "oci-layout", Encoding.UTF8.GetBytes("{\"imageLayoutVersion\":\"1.0.0\"}"));
        Add(tar, "index.json", index);
        foreach (byte[] blob in new[] { layer, config, manifest })
        {
            Add(tar, "blobs/sha256/" + Digest(blob)["sha256:".Length..], blob);
        }
    }

    private static byte[] BuildLayer()
    {
        using var buffer = new MemoryStream();
        using (var tar = new TarWriter(buffer, TarEntryFormat.Pax, leaveOpen: true))
        {
            tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "bin/") { Mode = (UnixFileMode)0b111_101_101 });
            tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "srv/") { Mode = (UnixFileMode)0b111_101_101 });
            tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, WorkingDir.TrimStart('/') + "/") { Mode = (UnixFileMode)0b111_101_101 });
            byte[] busybox = File.ReadAllBytes(BusyboxPath);
            tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "bin/busybox")
            {
                Mode = (UnixFileMode)0b111_101_101,
                DataStream = new MemoryStream(busybox),
            });
            // The applets the tests run directly (an exec or a container's first process needs a file to run).
            foreach (string applet in new[] { "sh", "true", "echo", "sleep", "cat", "tty", "stty", "head", "tee", "sha256sum", "mkfifo", "uname", "ps", "dd", "ip", "nc", "nproc", "grep", "pwd" })
            {
                tar.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "bin/" + applet) { LinkName = "busybox" });
            }
        }

        return buffer.ToArray();
    }

    private static void Add(TarWriter tar, string name, byte[] data) =>
        tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });

    private static string Digest(byte[] data) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(data));

    private static byte[] Json<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, OmitNulls);
}
