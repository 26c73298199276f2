using FirecrackerContainerd.Native;

namespace FirecrackerContainerd.Vsock.Virtio;

/// <summary>The "call" eventfd of a queue: writing to it makes the VMM interrupt the guest.</summary>
internal sealed unsafe class CallNotifier(int fd) : IDisposable
{
    private int _fd = fd;

    public void Signal()
    {
        ulong one = 1;
        // EAGAIN means the counter is saturated: the guest will be interrupted anyway.
        _ = Libc.Write(_fd, &one, sizeof(ulong));
    }

    public void Dispose()
    {
        Libc.CloseQuietly(_fd);
        _fd = -1;
    }
}

/// <summary>Waits on a queue's "kick" eventfd on its own thread (poll has no managed async twin) and
/// runs a callback each time the guest notifies the queue. The descriptor stays owned by the caller.</summary>
internal sealed unsafe class KickWatcher : IDisposable
{
    private readonly int _kickFd;
    private readonly int _stopFd;
    private readonly Action _onKick;
    private readonly Thread _thread;

    public KickWatcher(int kickFd, string name, Action onKick)
    {
        _kickFd = kickFd;
        _onKick = onKick;
        _stopFd = Libc.EventFd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        if (_stopFd < 0)
        {
            throw Libc.Error("eventfd", name);
        }
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    private void Run()
    {
        Libc.PollFd* fds = stackalloc Libc.PollFd[2];
        while (true)
        {
            fds[0] = new Libc.PollFd { Fd = _kickFd, Events = Libc.POLLIN };
            fds[1] = new Libc.PollFd { Fd = _stopFd, Events = Libc.POLLIN };
            int ready = Libc.Poll(fds, 2, -1);
            if (ready < 0)
            {
                if (System.Runtime.InteropServices.Marshal.GetLastPInvokeError() == Libc.EINTR)
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
                _ = Libc.Read(_kickFd, &count, sizeof(ulong));
                _onKick();
            }
        }
    }

    public void Dispose()
    {
        ulong one = 1;
        _ = Libc.Write(_stopFd, &one, sizeof(ulong));
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }
        Libc.CloseQuietly(_stopFd);
    }
}
