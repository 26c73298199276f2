using FirecrackerContainerd.Jail;
using FirecrackerContainerd.Native;

// fc-jail: confines one program (a VMM, or the vhost-user vsock device beside it) and execs it. Started as root, as pid
// 1 of a new pid namespace and in the VM's network namespace; everything else about the jail is on its command line.
// The steps are in the order that keeps each one possible: mounts while root, the cgroup before the chroot hides /sys,
// the capability bounding set before the uid change takes the right to drop it, the parent-death signal after
// the uid change (which clears it), and right after it the check that the parent did not die before it was set (a
// parent gone by then would never send it). Exit codes: 2 a bad command line, 125 the parent is gone, 126 a step of the
// jail failed, 127 the exec failed.
try
{
    JailArguments jail = JailArguments.Parse(args);
    Syscalls.Unshare(Libc.CLONE_NEWNS | Libc.CLONE_NEWIPC | Libc.CLONE_NEWUTS);
    Syscalls.Mount(null, "/", null, Syscalls.MS_REC | Syscalls.MS_PRIVATE, null);
    var chroot = new ChrootBuilder(jail.Root);
    chroot.MountRoot();
    foreach (string path in jail.ReadOnly)
    {
        chroot.Expose(path, writable: false);
    }

    foreach (string path in jail.ReadWrite)
    {
        chroot.Expose(path, writable: true);
    }

    foreach (string path in jail.Devices)
    {
        chroot.MakeDevice(path, jail.Uid, jail.Gid);
    }

    foreach (string procs in jail.CgroupProcs)
    {
        // "0" is the writer itself, whatever pid namespace it is in.
        File.WriteAllText(procs, "0");
    }

    foreach (string tap in jail.Taps)
    {
        Syscalls.ChownTap(tap, jail.Uid, jail.Gid);
    }

    Syscalls.SetHostname(jail.Hostname);
    Syscalls.Chroot(jail.Root);
    Syscalls.Chdir(jail.WorkingDirectory);
    Syscalls.DropBoundingSet();
    Syscalls.BecomeUser(jail.Uid, jail.Gid);
    Syscalls.SetNoNewPrivileges();
    Syscalls.SetParentDeathSignal(Syscalls.SIGKILL);
    if (jail.ParentFd is int parent)
    {
        if (!ParentWatch.ParentAlive(parent))
        {
            Console.Error.WriteLine($"fc-jail: the process that started the jail died before its parent-death signal was set (descriptor {parent} hung up): not starting {jail.Program}");
            return 125;
        }

        Syscalls.ReplaceWithNull(parent);
    }

    Syscalls.InstallSeccomp(SeccompFilter.Build());
    Syscalls.Exec(jail.Program, [jail.Program, .. jail.ProgramArguments]);
    return 127;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"fc-jail: {e.Message}\n{JailArguments.Usage}");
    return 2;
}
catch (Exception e) when (e is JailException or IOException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"fc-jail: {e.Message}");
    return 126;
}
