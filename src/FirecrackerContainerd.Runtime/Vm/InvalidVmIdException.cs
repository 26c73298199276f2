namespace FirecrackerContainerd.Runtime.Vm;

/// <summary>A task whose VM cannot be told: its bundle's annotations are unreadable, or the VM id is not a valid identifier.</summary>
public sealed class InvalidVmIdException : ArgumentException
{
    /// <summary>Creates the exception with a message saying what is wrong with the VM id or the bundle.</summary>
    public InvalidVmIdException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public InvalidVmIdException()
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public InvalidVmIdException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
