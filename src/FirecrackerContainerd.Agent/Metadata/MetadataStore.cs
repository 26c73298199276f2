using System.Text;
using System.Text.Json;
using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Metadata;

/// <summary>
/// The VM's metadata document as the guest sees it: <c>metadata.json</c> in a directory every container
/// mounts read-only. Replaced whole (write, then rename), so a reader never sees half a document, and a
/// bind mount of the directory (not the file) shows each new version.
/// </summary>
internal sealed class MetadataStore
{
    /// <summary>The largest document accepted (the control API's own limit is below it).</summary>
    public const int MaxBytes = 64 * 1024;

    public const string FileName = "metadata.json";

    public MetadataStore(string directory)
    {
        Directory = directory;
        System.IO.Directory.CreateDirectory(directory);
        string file = Path.Combine(directory, FileName);
        if (!File.Exists(file))
        {
            File.WriteAllText(file, "{}");
        }
    }

    /// <summary>The directory holding the document.</summary>
    public string Directory { get; }

    public void Register(TtrpcServiceRegistry registry) =>
        registry.AddUnary<AgentMetadata, Empty>(AgentService.ServiceName, "SetMetadata", AgentMetadata.Parser, (r, _) => SetAsync(r.Json));

    /// <summary>Validates and installs a new document.</summary>
    public async Task<Empty> SetAsync(string json)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(json);
        if (bytes.Length > MaxBytes)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"metadata of {bytes.Length} bytes exceeds {MaxBytes}");
        }

        try
        {
            using JsonDocument document = JsonDocument.Parse(bytes);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new TtrpcException(StatusCode.InvalidArgument, $"metadata must be a JSON object, not {document.RootElement.ValueKind}");
            }
        }
        catch (JsonException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"metadata is not JSON: {e.Message}");
        }

        string target = Path.Combine(Directory, FileName);
        string temporary = Path.Combine(Directory, $".{FileName}.{Guid.NewGuid():N}");
        await File.WriteAllBytesAsync(temporary, bytes).ConfigureAwait(false);
        File.Move(temporary, target, overwrite: true);
        AgentTrace.Write($"metadata: {bytes.Length} bytes installed");
        return new Empty();
    }
}
