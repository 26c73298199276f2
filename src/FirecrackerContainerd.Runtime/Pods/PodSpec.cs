using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Runtime.Pods;

/// <summary>A host file copied into the pod's files directory in the guest.</summary>
/// <param name="Name">Its name there.</param>
/// <param name="HostPath">Where the host has it.</param>
internal sealed record PodFile(string Name, string HostPath);

/// <summary>A CRI task's spec as it runs inside the pod's VM, and what the guest must hold for it first.</summary>
/// <param name="Spec">The rewritten spec.</param>
/// <param name="Files">Host files to copy into the guest.</param>
/// <param name="Volumes">emptyDir volumes to make in the guest.</param>
/// <param name="NetworkSysctls">The pod's network sysctls, set in the guest's network namespace rather than by the OCI runtime.</param>
internal sealed record PodSpecPlan(JsonObject Spec, IReadOnlyList<PodFile> Files, IReadOnlyList<string> Volumes, IReadOnlyDictionary<string, string> NetworkSysctls);

/// <summary>A CRI task asks for a host path the VM cannot serve; every such mount is named.</summary>
internal sealed class PodMountException(string taskId, IReadOnlyList<string> problems)
    : Exception($"create {taskId}: {string.Join("; ", problems)}")
{
    public IReadOnlyList<string> Problems { get; } = problems;
}

/// <summary>
/// Rewrites the OCI spec the CRI plugin wrote for a pod's sandbox or container so that it runs inside the pod's VM,
/// where every path is the guest's: the pod's network namespace is the VM's own network (the VM is the pod), the
/// pod's /dev/shm is a tmpfs of the guest's, emptyDir volumes are guest directories shared by the pod's containers,
/// and host files (the pod's /etc/hosts, /etc/hostname, /etc/resolv.conf, a termination log) are copied in. A host
/// path none of these cover (a hostPath directory, a device, a socket) is refused, naming the mount. A network
/// namespace the spec joins (the sandbox's host netns file, a container's <c>/proc/&lt;pid&gt;/ns/net</c>) is dropped,
/// so every task of the pod shares the guest's own network, which carries the pod's address; the other namespaces
/// joined through <c>/proc/&lt;pid&gt;/ns</c> stay as they are, since the pid is the sandbox's in the guest.
/// </summary>
internal static class PodSpec
{
    /// <summary>The largest host file copied into the guest.</summary>
    public const long MaxFileBytes = 1024 * 1024;

    /// <summary>The AppArmor profile containerd's CRI plugin gives every container on a host with AppArmor.</summary>
    public const string CriDefaultAppArmorProfile = "cri-containerd.apparmor.d";

    private const string EmptyDirMarker = "/volumes/kubernetes.io~empty-dir/";
    private const int RegularFile = 0x8000;
    private const int Directory = 0x4000;
    private const int Missing = -1;

    /// <summary>Plans <paramref name="spec"/> (left unchanged) for the pod <paramref name="task"/> belongs to.</summary>
    /// <param name="taskId">The task's id, for messages.</param>
    /// <param name="spec">The task's spec as containerd wrote it.</param>
    /// <param name="task">The task's place in its pod.</param>
    /// <exception cref="PodMountException">A mount names a host path the guest cannot have.</exception>
    public static PodSpecPlan Plan(string taskId, JsonObject spec, CriTask task)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(task);
        JsonObject guest = spec.DeepClone().AsObject();
        string pod = $"{WellKnownNames.GuestPodRoot}/{task.SandboxId}";
        var files = new Dictionary<string, PodFile>(StringComparer.Ordinal);
        var volumes = new SortedSet<string>(StringComparer.Ordinal);
        var problems = new List<string>();

        if (guest["linux"] is JsonObject linux && linux["namespaces"] is JsonArray namespaces)
        {
            // The pod's network namespace on the host holds the veth the VM is bridged to; inside, the guest's own
            // network is the pod's, shared by the sandbox and every container.
            for (int i = namespaces.Count - 1; i >= 0; i--)
            {
                if (namespaces[i] is JsonObject ns && Text(ns["type"]) == "network" && Text(ns["path"]) is { Length: > 0 })
                {
                    namespaces.RemoveAt(i);
                }
            }
        }

        if (Text(guest["hostname"]) is { Length: > 0 } && guest["linux"] is JsonObject withHostname
            && withHostname["namespaces"] is JsonArray joined && !joined.OfType<JsonObject>().Any(n => Text(n["type"]) == "uts"))
        {
            // A host-network pod shares the node's UTS namespace, and CRI names the node's hostname: in the guest
            // the "node" is the VM, whose own UTS namespace the agent keeps, so the task gets one with that name.
            joined.Add((JsonNode)new JsonObject { ["type"] = "uts" });
        }

        // The pod's network sysctls (CRI sets net.ipv4.ip_unprivileged_port_start and net.ipv4.ping_group_range on a
        // pod with a network of its own) belong to the pod's namespace, which is the guest's: the agent sets them
        // there, since an OCI runtime refuses net.* sysctls for a container that joins no network namespace.
        var sysctls = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (guest["linux"] is JsonObject withSysctls && withSysctls["sysctl"] is JsonObject sysctl)
        {
            foreach (string name in sysctl.Select(p => p.Key).Where(k => k.StartsWith("net.", StringComparison.Ordinal)).ToList())
            {
                sysctls[name] = Text(sysctl[name]) ?? string.Empty;
                sysctl.Remove(name);
            }
        }

        if (guest["process"] is JsonObject process && Text(process["apparmorProfile"]) == CriDefaultAppArmorProfile)
        {
            // CRI's runtime default confines a container on the host; the VM is this container's confinement.
            process.Remove("apparmorProfile");
        }

        JsonArray mounts = guest["mounts"] as JsonArray ?? [];
        for (int i = 0; i < mounts.Count; i++)
        {
            if (mounts[i] is not JsonObject mount || !IsBind(mount) || Text(mount["source"]) is not { Length: > 0 } source)
            {
                continue;
            }

            string destination = Text(mount["destination"]) ?? "?";
            if (destination == "/dev/shm")
            {
                mount["source"] = $"{pod}/shm";
                continue;
            }

            int marker = source.IndexOf(EmptyDirMarker, StringComparison.Ordinal);
            if (marker >= 0)
            {
                string name = source[(marker + EmptyDirMarker.Length)..].TrimEnd('/');
                if (!IsVolumeName(name))
                {
                    problems.Add($"mount {destination} (emptyDir {UntrustedText.Shown(source, 160)}): \"{UntrustedText.Shown(name, 64)}\" is not a volume name the guest accepts");
                    continue;
                }

                volumes.Add(name);
                mount["source"] = $"{pod}/volumes/{name}";
                continue;
            }

            int type = FileType(source);
            if (type == RegularFile)
            {
                long length = new FileInfo(source).Length;
                if (length > MaxFileBytes)
                {
                    problems.Add($"mount {destination} (file {source}): {length} bytes, more than the {MaxFileBytes} a host file may have to be copied into the VM");
                    continue;
                }

                string name = "f-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(source)))[..16];
                files[name] = new PodFile(name, source);
                mount["source"] = $"{pod}/files/{name}";
                continue;
            }

            problems.Add(type switch
            {
                Directory => $"mount {destination} (bind {source}): a host directory cannot be served inside the VM (an emptyDir volume, /dev/shm and host files up to 1 MiB can)",
                Missing => $"mount {destination} (bind {source}): no such file or directory on the host",
                _ => $"mount {destination} (bind {source}): not a regular file (a device, FIFO or socket of the host cannot reach the VM)",
            });
        }

        return problems.Count > 0
            ? throw new PodMountException(taskId, problems)
            : new PodSpecPlan(guest, [.. files.Values], [.. volumes], sysctls);
    }

    private static bool IsBind(JsonObject mount) =>
        Text(mount["type"]) == "bind"
        || (mount["options"] is JsonArray options && options.Any(o => Text(o) is "bind" or "rbind"));

    // Kubernetes volume names are DNS labels; the guest takes identifier characters only.
    private static bool IsVolumeName(string name) =>
        name.Length is > 0 and <= 128 && char.IsAsciiLetterOrDigit(name[0])
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-') && !name.Contains("..", StringComparison.Ordinal);

    // The S_IFMT bits of the host path, symbolic links followed, or Missing.
    private static int FileType(string path)
    {
        try
        {
            return VmControl.Interop.FileType(path);
        }
        catch (IOException)
        {
            return Missing;
        }
    }

    private static string? Text(JsonNode? node) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;
}
