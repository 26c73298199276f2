using System.Text.Json.Nodes;

namespace FirecrackerContainerd.Runtime.Tests.Pods;

/// <summary>OCI specs shaped as containerd's CRI plugin writes them for a pod's sandbox and its containers.</summary>
internal static class CriSpecs
{
    /// <summary>A sandbox (pause) spec for pod <paramref name="sandboxId"/>, in network namespace <paramref name="netns"/> (host network when null).</summary>
    public static JsonObject Sandbox(string sandboxId, string? netns = "/var/run/netns/cni-1234", string? cpuQuota = null, string? memory = null)
    {
        var annotations = new JsonObject
        {
            ["io.kubernetes.cri.container-type"] = "sandbox",
            ["io.kubernetes.cri.sandbox-id"] = sandboxId,
            ["io.kubernetes.cri.sandbox-name"] = "web",
            ["io.kubernetes.cri.sandbox-namespace"] = "default",
            ["io.kubernetes.cri.sandbox-cpu-period"] = "100000",
            ["io.kubernetes.cri.sandbox-cpu-quota"] = cpuQuota ?? "0",
            ["io.kubernetes.cri.sandbox-memory"] = memory ?? "0",
        };
        var namespaces = new JsonArray(Ns("pid"), Ns("ipc"), Ns("uts"), Ns("mount"));
        if (netns is not null)
        {
            namespaces.Add(Ns("network", netns));
        }

        return new JsonObject
        {
            ["ociVersion"] = "1.0.2-dev",
            ["process"] = new JsonObject { ["args"] = new JsonArray("/pause"), ["cwd"] = "/", ["apparmorProfile"] = "cri-containerd.apparmor.d" },
            ["root"] = new JsonObject { ["path"] = "rootfs", ["readonly"] = true },
            ["hostname"] = "web",
            ["mounts"] = new JsonArray(
                new JsonObject { ["destination"] = "/proc", ["type"] = "proc", ["source"] = "proc" },
                new JsonObject { ["destination"] = "/dev/shm", ["type"] = "bind", ["source"] = $"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/{sandboxId}/shm", ["options"] = new JsonArray("rbind", "ro") }),
            ["annotations"] = annotations,
            ["linux"] = new JsonObject { ["namespaces"] = namespaces, ["cgroupsPath"] = $"/k8s.io/{sandboxId}" },
        };
    }

    /// <summary>A container spec of pod <paramref name="sandboxId"/> whose sandbox has guest pid <paramref name="sandboxPid"/>, with <paramref name="mounts"/> after the pod's own.</summary>
    public static JsonObject Container(string sandboxId, int sandboxPid = 101, params JsonObject[] mounts)
    {
        var all = new JsonArray(
            new JsonObject { ["destination"] = "/proc", ["type"] = "proc", ["source"] = "proc" },
            new JsonObject { ["destination"] = "/dev/shm", ["type"] = "bind", ["source"] = $"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/{sandboxId}/shm", ["options"] = new JsonArray("rbind", "rprivate", "rw") });
        foreach (JsonObject mount in mounts)
        {
            all.Add(mount);
        }

        return new JsonObject
        {
            ["ociVersion"] = "1.0.2-dev",
            ["process"] = new JsonObject { ["args"] = new JsonArray("sh", "-c", "sleep 1000"), ["cwd"] = "/", ["apparmorProfile"] = "cri-containerd.apparmor.d" },
            ["root"] = new JsonObject { ["path"] = "rootfs" },
            ["mounts"] = all,
            ["annotations"] = new JsonObject
            {
                ["io.kubernetes.cri.container-type"] = "container",
                ["io.kubernetes.cri.container-name"] = "app",
                ["io.kubernetes.cri.sandbox-id"] = sandboxId,
            },
            ["linux"] = new JsonObject
            {
                ["namespaces"] = new JsonArray(
                    Ns("pid"), Ns("ipc", $"/proc/{sandboxPid}/ns/ipc"), Ns("uts", $"/proc/{sandboxPid}/ns/uts"), Ns("mount"), Ns("network", $"/proc/{sandboxPid}/ns/net")),
            },
        };
    }

    /// <summary>A bind mount of <paramref name="source"/> at <paramref name="destination"/>, as CRI writes one.</summary>
    public static JsonObject Bind(string destination, string source) =>
        new() { ["destination"] = destination, ["type"] = "bind", ["source"] = source, ["options"] = new JsonArray("rbind", "rprivate", "rw") };

    private static JsonObject Ns(string type, string? path = null) =>
        path is null ? new JsonObject { ["type"] = type } : new JsonObject { ["type"] = type, ["path"] = path };
}
