using System.IO.Pipes;
using FirecrackerContainerd.Jail;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Vmm.Tests.Jail;

/// <summary>fc-jail's check that the process which started it still lives, on a pipe whose write end that process holds.</summary>
public sealed class ParentWatchTests
{
    [Fact]
    public void Parent_is_alive_while_the_write_end_is_open()
    {
        using var writer = new AnonymousPipeServerStream(PipeDirection.Out);
        using var reader = writer.ClientSafePipeHandle;

        Assert.True(ParentWatch.ParentAlive(ReadEnd(writer)));
    }

    [Fact]
    public void Parent_is_gone_once_the_only_write_end_is_closed()
    {
        var writer = new AnonymousPipeServerStream(PipeDirection.Out);
        using var reader = writer.ClientSafePipeHandle;
        int fd = ReadEnd(writer);

        writer.Dispose();

        Assert.False(ParentWatch.ParentAlive(fd));
    }

    [Fact]
    public void Parent_is_alive_when_it_wrote_and_still_holds_the_write_end()
    {
        // Data waiting is POLLIN, not a hang-up: only the write end's closing says the parent is gone.
        using var writer = new AnonymousPipeServerStream(PipeDirection.Out);
        using var reader = writer.ClientSafePipeHandle;
        writer.WriteByte(1);
        writer.Flush();

        Assert.True(ParentWatch.ParentAlive(ReadEnd(writer)));
    }

    [Fact]
    public void A_descriptor_that_is_not_open_is_an_error_naming_it()
    {
        // Far above any descriptor this process has open (a closed low one could be reused by a test running beside).
        const int fd = 999_999;

        ErrnoException error = Assert.Throws<ErrnoException>(() => ParentWatch.ParentAlive(fd));
        Assert.Contains($"parent descriptor {fd}", error.Message, StringComparison.Ordinal);
    }

    private static int ReadEnd(AnonymousPipeServerStream writer) => (int)writer.ClientSafePipeHandle.DangerousGetHandle();
}
