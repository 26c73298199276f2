namespace FirecrackerContainerd.Network.Cni;

/// <summary>CNI JSON (a configuration, a result, an error) that does not follow the specification; the message names the field.</summary>
public sealed class CniFormatException : FormatException
{
    /// <summary>Creates the exception with a message naming the field and what is wrong with it.</summary>
    public CniFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception for JSON that does not parse at all.</summary>
    public CniFormatException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
