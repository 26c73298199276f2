namespace FirecrackerContainerd.Runtime.Rootfs;

/// <summary>A container's rootfs mounts that this runtime cannot or will not turn into a drive image.</summary>
public sealed class InvalidRootfsException : ArgumentException
{
    /// <summary>Creates the exception with a message naming the mount and what is wrong with it.</summary>
    public InvalidRootfsException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public InvalidRootfsException()
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public InvalidRootfsException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
