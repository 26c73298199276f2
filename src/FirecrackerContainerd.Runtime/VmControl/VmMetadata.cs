using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FirecrackerContainerd.Runtime.VmControl;

/// <summary>
/// The VM's metadata document as the shim keeps it: a JSON object replaced by Set and merged into by Update
/// with JSON merge-patch rules (RFC 7396, as Firecracker's MMDS PATCH).
/// </summary>
internal sealed class VmMetadata
{
    /// <summary>The largest document accepted, in UTF-8 bytes (Firecracker's default MMDS limit).</summary>
    public const int MaxBytes = 51200;

    private static readonly JsonDocumentOptions ParseOptions = new() { MaxDepth = 32 };
    private readonly Lock _gate = new();
    private JsonObject _document = [];

    /// <summary>Parses <paramref name="json"/> as a JSON object within the size and depth limits.</summary>
    /// <exception cref="ArgumentException">Not JSON, not an object, or too large or deep.</exception>
    public static JsonObject ParseObject(string json, string operation)
    {
        ArgumentNullException.ThrowIfNull(json);
        if (Encoding.UTF8.GetByteCount(json) > MaxBytes)
        {
            throw new ArgumentException($"{operation}: the metadata is larger than {MaxBytes} bytes");
        }

        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json, documentOptions: ParseOptions);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"{operation}: the metadata is not valid JSON: {e.Message}", e);
        }

        return node as JsonObject ?? throw new ArgumentException($"{operation}: the metadata must be a JSON object");
    }

    /// <summary>Replaces the document.</summary>
    public void Set(JsonObject document)
    {
        ArgumentNullException.ThrowIfNull(document);
        lock (_gate)
        {
            _document = (JsonObject)document.DeepClone();
        }
    }

    /// <summary>Merges <paramref name="patch"/> into the document; the result must stay within <see cref="MaxBytes"/>.</summary>
    /// <exception cref="ArgumentException">The merged document would be too large.</exception>
    public void Merge(JsonObject patch)
    {
        ArgumentNullException.ThrowIfNull(patch);
        lock (_gate)
        {
            var merged = (JsonObject)_document.DeepClone();
            MergeInto(merged, patch);
            if (Encoding.UTF8.GetByteCount(merged.ToJsonString()) > MaxBytes)
            {
                throw new ArgumentException($"update metadata: the merged metadata would be larger than {MaxBytes} bytes");
            }

            _document = merged;
        }
    }

    /// <summary>The document as compact JSON.</summary>
    public string ToJson()
    {
        lock (_gate)
        {
            return _document.ToJsonString();
        }
    }

    // RFC 7396: null removes a member, an object merges into an object member (replacing anything else), any
    // other value replaces the member.
    private static void MergeInto(JsonObject target, JsonObject patch)
    {
        foreach (var (name, value) in patch)
        {
            if (value is null)
            {
                target.Remove(name);
            }
            else if (value is JsonObject patchObject)
            {
                if (target[name] is not JsonObject targetObject)
                {
                    targetObject = [];
                    target[name] = targetObject;
                }

                MergeInto(targetObject, patchObject);
            }
            else
            {
                target[name] = value.DeepClone();
            }
        }
    }
}
