using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;

namespace FirecrackerContainerd.Control.Service;

/// <summary>The containerd namespace a call works in, read from its ttrpc metadata.</summary>
public static class CallNamespace
{
    /// <summary>The metadata key clients set (as containerd's clients do on gRPC).</summary>
    public const string MetadataKey = "containerd-namespace";

    /// <summary>The key containerd itself uses on ttrpc; accepted when <see cref="MetadataKey"/> is absent.</summary>
    public const string TtrpcMetadataKey = "containerd-namespace-ttrpc";

    /// <summary>The namespace when the call names none.</summary>
    public const string Default = "default";

    /// <summary>The call's namespace (not yet validated: <see cref="Shims.ShimEndpoint.For"/> does that).</summary>
    /// <exception cref="TtrpcException">InvalidArgument when the call carries several different namespaces.</exception>
    public static string Of(TtrpcCallContext call)
    {
        ArgumentNullException.ThrowIfNull(call);
        var values = call.Metadata.Get(MetadataKey);
        if (values.Count == 0)
        {
            values = call.Metadata.Get(TtrpcMetadataKey);
        }

        if (values.Distinct(StringComparer.Ordinal).Count() > 1)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"invalid namespace: the call names {values.Count} namespaces");
        }

        return values.Count == 0 ? Default : values[0];
    }

    /// <summary>Metadata naming <paramref name="ns"/> under both keys, for the call forwarded to a shim.</summary>
    public static TtrpcMetadata For(string ns) => new TtrpcMetadata().Add(MetadataKey, ns).Add(TtrpcMetadataKey, ns);
}
