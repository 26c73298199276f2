using FirecrackerContainerd.Jail;

namespace FirecrackerContainerd.Vmm.Tests.Jail;

/// <summary>fc-jail's seccomp program, run through a small classic-BPF interpreter.</summary>
public class SeccompFilterTests
{
    private const uint X8664 = 0xC000003E;
    private const uint Allow = 0x7fff0000;
    private const uint Eperm = 0x00050001;
    private const uint Kill = 0x80000000;

    [Theory]
    [InlineData(165u)] // mount
    [InlineData(272u)] // unshare
    [InlineData(101u)] // ptrace
    [InlineData(321u)] // bpf
    [InlineData(442u)] // mount_setattr, the last of the list
    [InlineData(0x40000000u)] // x32 read
    public void Denied_calls_get_EPERM(uint nr) => Assert.Equal(Eperm, Run(nr, X8664));

    [Theory]
    [InlineData(0u)] // read
    [InlineData(1u)] // write
    [InlineData(56u)] // clone
    [InlineData(435u)] // clone3
    [InlineData(202u)] // futex
    public void Everything_else_is_allowed(uint nr) => Assert.Equal(Allow, Run(nr, X8664));

    [Fact]
    public void A_call_from_another_architecture_kills_the_process() => Assert.Equal(Kill, Run(0, 0x40000003));

    private static uint Run(uint nr, uint arch)
    {
        SeccompFilter.Instruction[] program = SeccompFilter.Build();
        uint accumulator = 0;
        for (int pc = 0; pc < program.Length; pc++)
        {
            SeccompFilter.Instruction i = program[pc];
            switch (i.Code)
            {
                case 0x20:
                    accumulator = i.K == 0 ? nr : i.K == 4 ? arch : throw new InvalidOperationException($"load of offset {i.K}");
                    break;
                case 0x15:
                    pc += accumulator == i.K ? i.JumpTrue : i.JumpFalse;
                    break;
                case 0x35:
                    pc += accumulator >= i.K ? i.JumpTrue : i.JumpFalse;
                    break;
                case 0x06:
                    return i.K;
                default:
                    throw new InvalidOperationException($"instruction 0x{i.Code:x}");
            }
        }

        throw new InvalidOperationException("the program ran off its end");
    }
}
