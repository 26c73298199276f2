using System.Runtime.InteropServices;

namespace FirecrackerContainerd.Jail;

/// <summary>
/// The seccomp filter every jailed program starts under: a deny list of the calls that reach for more of the kernel
/// than a VMM or a device process needs (mounts, namespaces, ptrace, BPF, keyrings, modules, reboots), answered with
/// EPERM. It is a floor, not a whitelist: QEMU adds its own sandbox on top (<c>-sandbox on,...</c>), which the kernel
/// stacks with this one, and a filter is what makes <c>Seccomp: 2</c> true for the vsock device too.
/// </summary>
internal static class SeccompFilter
{
    /// <summary>struct sock_filter: one classic BPF instruction.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal readonly record struct Instruction(ushort Code, byte JumpTrue, byte JumpFalse, uint K);

    // linux/audit.h: AUDIT_ARCH_X86_64; struct seccomp_data: nr at offset 0, arch at offset 4.
    private const uint AuditArchX8664 = 0xC000003E;
    private const uint X32SyscallBit = 0x40000000;
    private const ushort LoadWordAbsolute = 0x20;
    private const ushort JumpIfEqual = 0x15;
    private const ushort JumpIfGreaterOrEqual = 0x35;
    private const ushort Return = 0x06;
    private const uint RetKillProcess = 0x80000000;
    private const uint RetAllow = 0x7fff0000;
    private const uint RetErrnoEperm = 0x00050000 | 1;

    /// <summary>x86_64 system call numbers refused with EPERM (arch/x86/entry/syscalls/syscall_64.tbl).</summary>
    internal static readonly uint[] Denied =
    [
        101, // ptrace
        135, // personality
        155, // pivot_root
        161, // chroot
        163, // acct
        165, // mount
        166, // umount2
        167, // swapon
        168, // swapoff
        169, // reboot
        172, // iopl
        173, // ioperm
        175, // init_module
        176, // delete_module
        179, // quotactl
        246, // kexec_load
        248, // add_key
        249, // request_key
        250, // keyctl
        272, // unshare
        298, // perf_event_open
        303, // name_to_handle_at
        304, // open_by_handle_at
        308, // setns
        310, // process_vm_readv
        311, // process_vm_writev
        313, // finit_module
        320, // kexec_file_load
        321, // bpf
        323, // userfaultfd
        428, // open_tree
        429, // move_mount
        430, // fsopen
        431, // fsconfig
        432, // fsmount
        433, // fspick
        442, // mount_setattr
    ];

    /// <summary>The program: kill on a foreign architecture, EPERM for x32 calls and the deny list, allow the rest.</summary>
    internal static Instruction[] Build()
    {
        var program = new List<Instruction>
        {
            new(LoadWordAbsolute, 0, 0, 4),
            new(JumpIfEqual, 1, 0, AuditArchX8664),
            new(Return, 0, 0, RetKillProcess),
            new(LoadWordAbsolute, 0, 0, 0),
        };

        // Each deny-list test jumps over the rest of the list to the EPERM return at its end when it matches.
        program.Add(new(JumpIfGreaterOrEqual, checked((byte)(Denied.Length + 1)), 0, X32SyscallBit));
        for (int i = 0; i < Denied.Length; i++)
        {
            int remaining = Denied.Length - 1 - i;
            program.Add(new(JumpIfEqual, checked((byte)(remaining + 1)), 0, Denied[i]));
        }

        program.Add(new(Return, 0, 0, RetAllow));
        program.Add(new(Return, 0, 0, RetErrnoEperm));
        return [.. program];
    }
}
