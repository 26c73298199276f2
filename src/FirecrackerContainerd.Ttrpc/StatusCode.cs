namespace FirecrackerContainerd.Ttrpc;

/// <summary>Call outcome codes, numbered as gRPC numbers them (the numbers travel in <c>google.rpc.Status.code</c>).</summary>
public enum StatusCode
{
    /// <summary>Success.</summary>
    OK = 0,
    /// <summary>The call was cancelled by the caller.</summary>
    Canceled = 1,
    /// <summary>An error with no better code.</summary>
    Unknown = 2,
    /// <summary>The caller sent a bad argument.</summary>
    InvalidArgument = 3,
    /// <summary>The deadline passed before the call finished.</summary>
    DeadlineExceeded = 4,
    /// <summary>The named thing does not exist.</summary>
    NotFound = 5,
    /// <summary>The thing to create exists already.</summary>
    AlreadyExists = 6,
    /// <summary>The caller may not do this.</summary>
    PermissionDenied = 7,
    /// <summary>A limit was hit (for example the 4 MiB message limit).</summary>
    ResourceExhausted = 8,
    /// <summary>The system is not in the state the call needs.</summary>
    FailedPrecondition = 9,
    /// <summary>The call was aborted by a conflict.</summary>
    Aborted = 10,
    /// <summary>A value was outside its valid range.</summary>
    OutOfRange = 11,
    /// <summary>The service or method is not implemented.</summary>
    Unimplemented = 12,
    /// <summary>An invariant broke.</summary>
    Internal = 13,
    /// <summary>The peer is not reachable (for example the connection closed).</summary>
    Unavailable = 14,
    /// <summary>Data was lost.</summary>
    DataLoss = 15,
    /// <summary>The caller is not authenticated.</summary>
    Unauthenticated = 16,
}
