using System.Runtime.InteropServices;
using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Jail;

/// <summary>
/// Tells whether the process that started the jail still lives, through the read end of a pipe whose only write end
/// that process holds (the shim keeps the jailed program's standard input open for this): once every write end is
/// closed, which the kernel does when the holder dies, the read end reports POLLHUP.
/// </summary>
/// <remarks>
/// PR_SET_PDEATHSIG only covers a parent that dies after it is set; fc-jail can set it only after its uid change
/// (which clears it). Asked after the signal is set, this closes the window before: a parent that died earlier has
/// closed its files before the kernel reparented its children, so its write end is gone by then.
/// </remarks>
internal static unsafe class ParentWatch
{
    private const short POLLERR = 0x8;
    private const short POLLHUP = 0x10;
    private const short POLLNVAL = 0x20;
    private const int EBADF = 9;

    /// <summary>True while a write end of <paramref name="fd"/>'s pipe is open; false once they are all closed.</summary>
    /// <exception cref="ErrnoException">The descriptor is not open, or poll failed.</exception>
    public static bool ParentAlive(int fd)
    {
        var poll = new Libc.PollFd { Fd = fd, Events = Libc.POLLIN };
        int ready;
        do
        {
            ready = Libc.Poll(&poll, 1, 0);
        }
        while (ready < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR);

        if (ready < 0)
        {
            throw Libc.Error("poll", $"parent descriptor {fd}");
        }

        if ((poll.REvents & POLLNVAL) != 0)
        {
            throw new ErrnoException("poll", $"parent descriptor {fd}", EBADF);
        }

        return (poll.REvents & (POLLHUP | POLLERR)) == 0;
    }
}
