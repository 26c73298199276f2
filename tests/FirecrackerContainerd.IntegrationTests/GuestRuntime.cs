namespace FirecrackerContainerd.IntegrationTests;

/// <summary>What containerd's shims boot in these tests: the agent and guest image built from this tree, and a runtime configuration naming them.</summary>
internal static class GuestRuntime
{
    /// <summary>
    /// Publishes the agent, builds the guest image with it (both cached) and writes, at <paramref name="path"/>, the
    /// runtime configuration that points the shims at it (its root drive when it has one, QEMU, 2 vCPUs, 512 MiB, VM directories under
    /// <paramref name="shimBaseDirectory"/>); returns the guest's kernel release from the image manifest.
    /// </summary>
    public static async Task<string> WriteConfigAsync(string path, string shimBaseDirectory, CancellationToken cancellationToken)
    {
        if (ProcessRunner.FindOnPath("qemu-system-x86_64") is null)
        {
            throw new InvalidOperationException("qemu-system-x86_64 is missing: install it with `apt-get install qemu-system-x86`");
        }

        string agent = await AgentBinary.RequireAsync(cancellationToken);
        GuestImage image = await GuestImage.BuildAsync(agent, cancellationToken);
        using var manifest = System.Text.Json.JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(image.Directory, "manifest.json"), cancellationToken));
        string release = manifest.RootElement.GetProperty("kernelRelease").GetString()
            ?? throw new InvalidOperationException($"{image.Directory}/manifest.json has no kernelRelease");
        await File.WriteAllTextAsync(path, System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["kernel_image_path"] = image.Kernel,
            ["initrd_path"] = image.Initrd,

            // Our kernel's image boots from its root drive, as scripts/install and the demo configure it; Debian's from its initramfs.
            ["root_drive_path"] = image.RootDrive ?? string.Empty,
            ["shim_base_dir"] = shimBaseDirectory,
            ["vmm"] = "qemu",
            ["vcpu_count"] = 2,
            ["mem_size_mib"] = 512,

            // FC_TEST_GUEST_DEBUG=1: the agent traces calls, runtime commands and reaped pids on the console,
            // which the shim logs into containerd's log.
            ["kernel_args"] = Environment.GetEnvironmentVariable("FC_TEST_GUEST_DEBUG") == "1" ? "reboot=k panic=-1 fc.debug=1" : "reboot=k panic=-1 quiet",
        }), cancellationToken);
        return release;
    }
}
