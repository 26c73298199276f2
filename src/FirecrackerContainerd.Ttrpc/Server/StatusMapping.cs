using Google.Protobuf;

namespace FirecrackerContainerd.Ttrpc.Server;

/// <summary>Turns a handler's exception into the status the client sees, the way containerd's errdefs expect.</summary>
internal static class StatusMapping
{
    public static (StatusCode Code, string Message) FromException(Exception e, bool deadlinePassed) => e switch
    {
        TtrpcException t => (t.StatusCode, t.Message),
        OperationCanceledException when deadlinePassed => (StatusCode.DeadlineExceeded, "context deadline exceeded"),
        OperationCanceledException => (StatusCode.Canceled, "context canceled"),
        TimeoutException => (StatusCode.DeadlineExceeded, e.Message),
        InvalidProtocolBufferException => (StatusCode.InvalidArgument, e.Message),
        ArgumentException => (StatusCode.InvalidArgument, e.Message),
        KeyNotFoundException or FileNotFoundException or DirectoryNotFoundException => (StatusCode.NotFound, e.Message),
        NotImplementedException or NotSupportedException => (StatusCode.Unimplemented, e.Message),
        InvalidOperationException => (StatusCode.FailedPrecondition, e.Message),
        UnauthorizedAccessException => (StatusCode.PermissionDenied, e.Message),
        _ => (StatusCode.Unknown, e.Message),
    };
}
