namespace FirecrackerContainerd.Network.Netlink;

/// <summary>A netlink request the kernel refused, with its errno, the request and the device it was about.</summary>
public sealed class NetlinkException : IOException
{
    /// <summary>Creates the exception for a request that failed with <paramref name="errno"/>.</summary>
    /// <param name="errno">The positive errno the kernel answered with.</param>
    /// <param name="operation">What was asked, e.g. <c>add ingress qdisc</c>.</param>
    /// <param name="device">The device (name and index) the request was about, when it was about one.</param>
    /// <param name="kernelMessage">The kernel's extended-ack text, when it sent one.</param>
    public NetlinkException(int errno, string operation, string? device, string? kernelMessage = null)
        : base(Format(errno, operation, device, kernelMessage))
    {
        Errno = errno;
        Operation = operation;
        Device = device;
    }

    /// <summary>The errno the kernel answered with.</summary>
    public int Errno { get; }

    /// <summary>What was asked.</summary>
    public string Operation { get; }

    /// <summary>The device the request was about, or null.</summary>
    public string? Device { get; }

    private static string Format(int errno, string operation, string? device, string? kernelMessage)
    {
        string on = device is null ? string.Empty : $" on {device}";
        string why = string.IsNullOrEmpty(kernelMessage) ? string.Empty : $" ({kernelMessage})";
        return $"rtnetlink: {operation}{on}: {Interop.ErrnoText(errno)}{why}";
    }
}

/// <summary>A netlink reply that does not parse: a length that runs past its buffer, a missing header, a bad value.</summary>
public sealed class NetlinkProtocolException : IOException
{
    /// <summary>Creates the exception with a message naming what was malformed and where.</summary>
    public NetlinkProtocolException(string message)
        : base(message)
    {
    }
}
