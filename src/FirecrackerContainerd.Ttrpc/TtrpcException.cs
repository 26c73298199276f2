namespace FirecrackerContainerd.Ttrpc;

/// <summary>A call that ended with a non-OK status; thrown by the client and by handlers that want a specific code.</summary>
public sealed class TtrpcException : Exception
{
    /// <summary>Creates the exception for <paramref name="statusCode"/> with the status message.</summary>
    public TtrpcException(StatusCode statusCode, string message)
        : base(message)
    {
        StatusCode = statusCode;
    }

    /// <summary>Creates the exception for <paramref name="statusCode"/> with the status message and its cause.</summary>
    public TtrpcException(StatusCode statusCode, string message, Exception innerException)
        : base(message, innerException)
    {
        StatusCode = statusCode;
    }

    /// <summary>Creates an Unknown-status exception.</summary>
    public TtrpcException()
        : this(StatusCode.Unknown, "unknown error")
    {
    }

    /// <summary>Creates an Unknown-status exception with a message.</summary>
    public TtrpcException(string message)
        : this(StatusCode.Unknown, message)
    {
    }

    /// <summary>Creates an Unknown-status exception with a message and its cause.</summary>
    public TtrpcException(string message, Exception innerException)
        : this(StatusCode.Unknown, message, innerException)
    {
    }

    /// <summary>The status code, in gRPC numbering.</summary>
    public StatusCode StatusCode { get; }
}
