using static FirecrackerContainerd.Agent.Oci.GuestRuntimes;
using static FirecrackerContainerd.Agent.Oci.SpecShape;

namespace FirecrackerContainerd.Agent.Oci;

/// <summary>
/// The fields of the OCI runtime spec's config.json (runtime-spec 1.0 to 1.3, written from its published
/// field names) with what the guest does with each. A field that is not listed here is unknown to the guest's
/// runtimes, which would silently ignore it, so it is refused. "Only(Crun)" marks fields the guest's runc 1.1
/// does not implement; crun 1.21 implements every field not refused here. Paths (bind sources, namespaces to join)
/// are the guest's; SpecCompatibility checks that they exist there. docs/oci-spec.md explains each refusal.
/// </summary>
internal static class SpecFields
{
    private const string OtherPlatform = "a section for another platform; the guest runs Linux containers";
    private const string SecurityModule = "the guest kernel loads no security-module policies; labels and profiles live in the host's kernel";

    /// <summary>config.json's process object, also the whole of an exec's process spec.</summary>
    public static SpecShape Process { get; } = Object(
        ("terminal", Value),
        ("consoleSize", Object(("height", Value), ("width", Value))),
        ("user", Object(
            ("uid", Value),
            ("gid", Value),
            ("umask", Value),
            ("additionalGids", ArrayOf(Value)),
            ("username", Refused("a Windows user name")))),
        ("args", ArrayOf(Value)),
        ("commandLine", Refused("a Windows command line")),
        ("env", ArrayOf(Value)),
        ("cwd", Value),
        ("capabilities", Object(
            ("bounding", ArrayOf(Value)),
            ("effective", ArrayOf(Value)),
            ("inheritable", ArrayOf(Value)),
            ("permitted", ArrayOf(Value)),
            ("ambient", ArrayOf(Value)))),
        ("rlimits", ArrayOf(Object(("type", Value), ("hard", Value), ("soft", Value)))),
        ("noNewPrivileges", Value),
        ("apparmorProfile", Refused(SecurityModule)),
        ("oomScoreAdj", Value),
        ("scheduler", Object(
            ("policy", Value),
            ("nice", Value),
            ("priority", Value),
            ("flags", ArrayOf(Value)),
            ("runtime", Value),
            ("deadline", Value),
            ("period", Value)).Only(Crun)),
        ("selinuxLabel", Refused(SecurityModule)),
        ("ioPriority", Object(("class", Value), ("priority", Value)).Only(Crun)),
        ("execCPUAffinity", Object(("initial", Value), ("final", Value)).Only(Crun)));

    private static readonly SpecShape IdMapping = Object(("containerID", Value), ("hostID", Value), ("size", Value));

    // A hook names a program on the host (nerdctl's network set-up, for one), to be run with the container's
    // pid; inside the guest that program is missing, or is some other program, and the pid is the guest's.
    private static readonly SpecShape Hook = Refused("OCI hooks run host programs on the container's pid; inside the VM there are neither");

    private static readonly SpecShape ThrottleDevice = Object(("major", Value), ("minor", Value), ("rate", Value));

    private static readonly SpecShape Resources = Object(
        ("devices", ArrayOf(Object(("allow", Value), ("type", Value), ("major", Value), ("minor", Value), ("access", Value)))),
        ("memory", Object(
            ("limit", Value),
            ("reservation", Value),
            ("swap", Value),
            ("kernel", Refused("kernel memory limits do not exist in cgroup v2, which the guest runs")),
            ("kernelTCP", Refused("kernel TCP memory limits do not exist in cgroup v2, which the guest runs")),
            ("swappiness", Value),
            ("disableOOMKiller", Value),
            ("useHierarchy", Value.Only(Crun)),
            ("checkBeforeUpdate", Value.Only(Crun)))),
        ("cpu", Object(
            ("shares", Value),
            ("quota", Value),
            ("burst", Value.Only(Crun)),
            ("period", Value),
            ("realtimeRuntime", Value),
            ("realtimePeriod", Value),
            ("cpus", Value),
            ("mems", Value),
            ("idle", Value.Only(Crun)))),
        ("pids", Object(("limit", Value))),
        ("blockIO", Object(
            ("weight", Value),
            ("leafWeight", Value),
            ("weightDevice", ArrayOf(Object(("major", Value), ("minor", Value), ("weight", Value), ("leafWeight", Value)))),
            ("throttleReadBpsDevice", ArrayOf(ThrottleDevice)),
            ("throttleWriteBpsDevice", ArrayOf(ThrottleDevice)),
            ("throttleReadIOPSDevice", ArrayOf(ThrottleDevice)),
            ("throttleWriteIOPSDevice", ArrayOf(ThrottleDevice)))),
        ("hugepageLimits", ArrayOf(Object(("pageSize", Value), ("limit", Value)))),
        ("network", Refused("net_cls and net_prio are cgroup v1 controllers; the guest runs cgroup v2")),
        ("rdma", Refused("the VM has no RDMA devices")),
        ("unified", MapOf(Value)));

    private static readonly SpecShape Linux = Object(
        ("uidMappings", ArrayOf(IdMapping)),
        ("gidMappings", ArrayOf(IdMapping)),
        ("sysctl", MapOf(Value)),
        ("resources", Resources),
        ("cgroupsPath", Value),
        ("namespaces", ArrayOf(Object(("type", Value), ("path", Value)))),
        ("devices", ArrayOf(Object(
            ("path", Value), ("type", Value), ("major", Value), ("minor", Value), ("fileMode", Value), ("uid", Value), ("gid", Value)))),
        ("netDevices", Refused("it moves host network devices into the container; the VM holds none of the host's devices")),
        ("seccomp", Object(
            ("defaultAction", Value),
            ("defaultErrnoRet", Value),
            ("architectures", ArrayOf(Value)),
            ("flags", ArrayOf(Value)),
            ("listenerPath", Refused("it names a seccomp agent's Unix socket on the host, which the guest cannot reach")),
            ("listenerMetadata", Value),
            ("syscalls", ArrayOf(Object(
                ("names", ArrayOf(Value)),
                ("action", Value),
                ("errnoRet", Value),
                ("args", ArrayOf(Object(("index", Value), ("value", Value), ("valueTwo", Value), ("op", Value))))))))),
        ("rootfsPropagation", Value),
        ("maskedPaths", ArrayOf(Value)),
        ("readonlyPaths", ArrayOf(Value)),
        ("mountLabel", Refused(SecurityModule)),
        ("intelRdt", Refused("the VM has no resctrl file system (Intel RDT)")),
        ("memoryPolicy", Refused("NUMA memory policies are not implemented by the guest's runtimes, and the VM has one NUMA node")),
        ("personality", Object(("domain", Value), ("flags", ArrayOf(Value))).Only(Crun)),
        ("timeOffsets", MapOf(Object(("secs", Value), ("nanosecs", Value))).Only(Crun)));

    /// <summary>The whole of config.json.</summary>
    public static SpecShape Config { get; } = Object(
        ("ociVersion", Value),
        ("process", Process),
        ("root", Object(("path", Value), ("readonly", Value))),
        ("hostname", Value),
        ("domainname", Value.Only(Crun)),
        ("mounts", ArrayOf(Object(
            ("destination", Value),
            ("type", Value),
            ("source", Value),
            ("options", ArrayOf(Value)),
            ("uidMappings", ArrayOf(IdMapping).Only(Crun)),
            ("gidMappings", ArrayOf(IdMapping).Only(Crun))))),
        ("hooks", Object(
            ("prestart", ArrayOf(Hook)),
            ("createRuntime", ArrayOf(Hook)),
            ("createContainer", ArrayOf(Hook)),
            ("startContainer", ArrayOf(Hook)),
            ("poststart", ArrayOf(Hook)),
            ("poststop", ArrayOf(Hook)))),
        ("annotations", MapOf(Value)),
        ("linux", Linux),
        ("solaris", Refused(OtherPlatform)),
        ("windows", Refused(OtherPlatform)),
        ("vm", Refused("it asks for a hypervisor-based container; the container already runs inside this VM")),
        ("zos", Refused(OtherPlatform)),
        ("freebsd", Refused(OtherPlatform)));
}
