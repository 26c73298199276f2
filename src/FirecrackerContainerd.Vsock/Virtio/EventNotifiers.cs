namespace FirecrackerContainerd.Vsock.Virtio;

/// <summary>The "call" eventfd of a queue: writing to it makes the VMM interrupt the guest.</summary>
internal sealed unsafe class CallNotifier(int fd) : IDisposable
{
    private int fd = fd;

    public void Signal()
    {
        ulong one = 1;
        // EAGAIN means the counter is saturated: the guest will be interrupted anyway.
        _ = Interop.Write(fd, &one, sizeof(ulong));
    }

    public void Dispose()
    {
        Interop.CloseQuietly(fd);
        fd = -1;
    }
}

/// <summary>Waits on a queue's "kick" eventfd on its own thread (poll has no managed async twin) and
/// runs a callback each time the guest notifies the queue. The descriptor stays owned by the caller.</summary>
internal sealed unsafe class KickWatcher : IDisposable
{
    private readonly int kickFd;
    private readonly int stopFd;
    private readonly Action onKick;
    private readonly Thread thread;

    public KickWatcher(int kickFd, string name, Action onKick)
    {
        this.kickFd = kickFd;
        this.onKick = onKick;
        stopFd = Interop.EventFd(0, Interop.EFD_CLOEXEC | Interop.EFD_NONBLOCK);
        if (stopFd < 0)
        {
            throw Interop.Error("eventfd", name);
        }
        thread = new Thread(Run) { IsBackground = true, Name = name };
        thread.Start();
    }

    private void Run()
    {
        Interop.PollFd* fds = stackalloc Interop.PollFd[2];
        while (true)
        {
            fds[0] = new Interop.PollFd { Fd = kickFd, Events = Interop.POLLIN };
            fds[1] = new Interop.PollFd { Fd = stopFd, Events = Interop.POLLIN };
            int ready = Interop.Poll(fds, 2, -1);
            if (ready < 0)
            {
                if (System.Runtime.InteropServices.Marshal.GetLastPInvokeError() == Interop.EINTR)
                {
                    continue;
                }
                return;
            }
            if (fds[1].REvents != 0)
            {
                return;
            }
            if (fds[0].REvents != 0)
            {
                ulong count;
                _ = Interop.Read(kickFd, &count, sizeof(ulong));
                onKick();
            }
        }
    }

    public void Dispose()
    {
        ulong one = 1;
        _ = Interop.Write(stopFd, &one, sizeof(ulong));
        if (Thread.CurrentThread != thread)
        {
            thread.Join();
        }
        Interop.CloseQuietly(stopFd);
    }
}
