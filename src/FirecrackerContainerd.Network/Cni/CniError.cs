using System.Text.Json;
using System.Text.Json.Nodes;

namespace FirecrackerContainerd.Network.Cni;

/// <summary>A CNI error result (spec section 5, "Error"): <c>{"cniVersion", "code", "msg", "details"}</c>.</summary>
/// <param name="Code">The error code (<see cref="CniErrorCodes"/>; 100 and above are the plugin's own).</param>
/// <param name="Message">A short message (<c>msg</c>).</param>
/// <param name="Details">A longer description (<c>details</c>), or null.</param>
public sealed record CniError(int Code, string Message, string? Details = null)
{
    /// <summary>The error as the JSON a plugin prints on stdout.</summary>
    public string ToJson(string cniVersion)
    {
        var json = new JsonObject { ["cniVersion"] = cniVersion, ["code"] = Code, ["msg"] = Message };
        if (!string.IsNullOrEmpty(Details))
        {
            json["details"] = Details;
        }

        return Json.Write(json);
    }

    /// <summary>Reads an error a plugin printed; null when the text is not an error result.</summary>
    public static CniError? TryParse(string text)
    {
        try
        {
            if (JsonNode.Parse(text) is not JsonObject json
                || json["code"] is not JsonValue code || code.GetValueKind() != JsonValueKind.Number || !code.TryGetValue(out int value))
            {
                return null;
            }

            string? message = json["msg"] is JsonValue msg && msg.GetValueKind() == JsonValueKind.String ? msg.GetValue<string>() : null;
            string? details = json["details"] is JsonValue d && d.GetValueKind() == JsonValueKind.String ? d.GetValue<string>() : null;
            return new CniError(value, message ?? string.Empty, details);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>The error codes the CNI specification reserves (0-99), plus the reference library's catch-all.</summary>
public static class CniErrorCodes
{
    /// <summary>The configuration's version is not one the plugin supports.</summary>
    public const int IncompatibleVersion = 1;

    /// <summary>A field of the configuration is not supported; the message names it.</summary>
    public const int UnsupportedField = 2;

    /// <summary>The container is unknown; no cleanup is needed.</summary>
    public const int UnknownContainer = 3;

    /// <summary>A required environment variable is missing or invalid; the message names it.</summary>
    public const int InvalidEnvironmentVariables = 4;

    /// <summary>Reading the configuration or writing the result failed.</summary>
    public const int IOFailure = 5;

    /// <summary>The configuration (or its <c>prevResult</c>) does not decode.</summary>
    public const int DecodingFailure = 6;

    /// <summary>The configuration is invalid.</summary>
    public const int InvalidNetworkConfig = 7;

    /// <summary>A transient condition; the runtime may retry later.</summary>
    public const int TryAgainLater = 11;

    /// <summary>Anything else (the reference library's <c>ErrInternal</c>).</summary>
    public const int Internal = 999;
}
