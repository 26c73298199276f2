namespace FirecrackerContainerd.Ttrpc.Framing;

/// <summary>The byte stream broke the framing rules (for example it ended inside a frame); the connection is unusable.</summary>
public sealed class TtrpcProtocolException : IOException
{
    /// <summary>Creates the exception with a message naming what was being read.</summary>
    public TtrpcProtocolException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the underlying failure.</summary>
    public TtrpcProtocolException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a default message.</summary>
    public TtrpcProtocolException()
    {
    }
}
