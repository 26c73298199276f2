using System.Net;

namespace FirecrackerContainerd.Vmm.Firecracker.Api;

/// <summary>Firecracker refused a request; carries its <c>fault_message</c> verbatim with the method and endpoint.</summary>
public sealed class FirecrackerApiException : Exception
{
    /// <summary>Creates the exception for one failed request.</summary>
    public FirecrackerApiException(string vmId, string method, string path, HttpStatusCode statusCode, string faultMessage)
        : base($"firecracker API {method} {path} for vm \"{vmId}\" failed with {(int)statusCode}: {faultMessage}")
    {
        VmId = vmId;
        Method = method;
        Path = path;
        StatusCode = statusCode;
        FaultMessage = faultMessage;
    }

    /// <summary>The machine the request was for.</summary>
    public string VmId { get; }

    /// <summary>The HTTP method of the failed request.</summary>
    public string Method { get; }

    /// <summary>The endpoint of the failed request, e.g. <c>/drives/root</c>.</summary>
    public string Path { get; }

    /// <summary>The status Firecracker answered with.</summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>Firecracker's own explanation, unchanged (or the raw body when it was not the JSON error shape).</summary>
    public string FaultMessage { get; }
}
