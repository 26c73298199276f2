using System.Collections.Immutable;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FirecrackerContainerd.Network.Cni;

/// <summary>
/// Reads and writes CNI results in the JSON of spec versions 0.3.0 to 1.0.0. Results come from external programs,
/// so reading checks every field it uses (types, addresses, interface indexes) and names the one that is wrong;
/// fields it does not use are ignored, as newer versions add some.
/// </summary>
public static class CniResultJson
{
    /// <summary>Parses and checks a result.</summary>
    /// <exception cref="CniFormatException">The JSON does not parse, or a field is missing, mistyped or out of range.</exception>
    public static CniResult Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new CniFormatException($"result is not JSON: {e.Message}", e);
        }

        return Parse(node);
    }

    /// <summary>Checks and converts an already parsed result (such as a configuration's <c>prevResult</c>).</summary>
    /// <exception cref="CniFormatException">A field is missing, mistyped or out of range.</exception>
    public static CniResult Parse(JsonNode? node)
    {
        JsonObject result = node as JsonObject ?? throw new CniFormatException("result is not a JSON object");
        string version = Json.RequiredString(result, "cniVersion", "result");
        if (!CniVersion.IsSupported(version))
        {
            throw new CniFormatException($"result.cniVersion \"{version}\" is not one of {string.Join(", ", CniVersion.Supported)}");
        }

        ImmutableArray<CniInterface> interfaces = Json.Array(result, "interfaces", "result")
            .Select((item, i) => ParseInterface(item, $"result.interfaces[{i}]"))
            .ToImmutableArray();
        ImmutableArray<CniIpConfig> ips = Json.Array(result, "ips", "result")
            .Select((item, i) => ParseIp(item, $"result.ips[{i}]", interfaces.Length))
            .ToImmutableArray();
        ImmutableArray<CniRoute> routes = Json.Array(result, "routes", "result")
            .Select((item, i) => ParseRoute(item, $"result.routes[{i}]"))
            .ToImmutableArray();
        CniDns dns = result["dns"] is null ? CniDns.Empty : ParseDns(result["dns"], "result.dns");
        return new CniResult(version, interfaces, ips, routes, dns);
    }

    /// <summary>The result as a JSON object in the shape of <paramref name="version"/> (before 1.0.0 each IP names its IP version).</summary>
    public static JsonObject ToJson(CniResult result, string version)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (!CniVersion.IsSupported(version))
        {
            throw new ArgumentException($"CNI version \"{version}\" is not one of {string.Join(", ", CniVersion.Supported)}", nameof(version));
        }

        // Empty lists and values are left out, as the reference implementation's omitempty fields are; "dns" is
        // always written.
        var json = new JsonObject { ["cniVersion"] = version };
        if (!result.Interfaces.IsEmpty)
        {
            json["interfaces"] = new JsonArray(result.Interfaces.Select(i => (JsonNode)Omit(new JsonObject
            {
                ["name"] = i.Name,
                ["mac"] = i.Mac,
                ["sandbox"] = i.Sandbox,
            })).ToArray());
        }

        if (!result.Ips.IsEmpty)
        {
            json["ips"] = new JsonArray(result.Ips.Select(ip =>
            {
                var item = new JsonObject();
                if (CniVersion.HasIpVersionField(version))
                {
                    item["version"] = ip.Address.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? "4" : "6";
                }

                if (ip.Interface is int index)
                {
                    item["interface"] = index;
                }

                item["address"] = ip.Address.ToString();
                item["gateway"] = ip.Gateway?.ToString();
                return (JsonNode)Omit(item);
            }).ToArray());
        }

        if (!result.Routes.IsEmpty)
        {
            json["routes"] = new JsonArray(result.Routes.Select(r => (JsonNode)Omit(new JsonObject
            {
                ["dst"] = r.Destination.ToString(),
                ["gw"] = r.Gateway?.ToString(),
            })).ToArray());
        }

        var dns = new JsonObject();
        if (!result.Dns.Nameservers.IsEmpty)
        {
            dns["nameservers"] = Strings(result.Dns.Nameservers);
        }

        if (!string.IsNullOrEmpty(result.Dns.Domain))
        {
            dns["domain"] = result.Dns.Domain;
        }

        if (!result.Dns.Search.IsEmpty)
        {
            dns["search"] = Strings(result.Dns.Search);
        }

        if (!result.Dns.Options.IsEmpty)
        {
            dns["options"] = Strings(result.Dns.Options);
        }

        json["dns"] = dns;
        return json;
    }

    /// <summary>The result as JSON text in the shape of <paramref name="version"/>.</summary>
    public static string Write(CniResult result, string version) => Json.Write(ToJson(result, version));

    private static CniInterface ParseInterface(JsonNode? node, string where)
    {
        JsonObject item = node as JsonObject ?? throw new CniFormatException($"{where} is not an object");
        string name = Json.RequiredString(item, "name", where);
        if (name.Length == 0)
        {
            throw new CniFormatException($"{where}.name is empty");
        }

        return new CniInterface(name, Json.OptionalString(item, "mac", where), Json.OptionalString(item, "sandbox", where));
    }

    private static CniIpConfig ParseIp(JsonNode? node, string where, int interfaceCount)
    {
        JsonObject item = node as JsonObject ?? throw new CniFormatException($"{where} is not an object");
        CidrAddress address = Cidr(Json.RequiredString(item, "address", where), $"{where}.address");
        IPAddress? gateway = OptionalIp(item, "gateway", where);
        if (gateway is not null && gateway.AddressFamily != address.Address.AddressFamily)
        {
            throw new CniFormatException($"{where}.gateway {gateway} is not of the address's family ({address})");
        }

        string? ipVersion = Json.OptionalString(item, "version", where);
        string family = address.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? "4" : "6";
        if (ipVersion is not null && ipVersion != family)
        {
            throw new CniFormatException($"{where}.version \"{ipVersion}\" does not match the address {address}");
        }

        int? index = null;
        if (item["interface"] is JsonNode interfaceNode)
        {
            if (interfaceNode.GetValueKind() != JsonValueKind.Number || !interfaceNode.AsValue().TryGetValue(out int value) || value < 0)
            {
                throw new CniFormatException($"{where}.interface is not a non-negative integer: {interfaceNode.ToJsonString()}");
            }

            if (value >= interfaceCount)
            {
                throw new CniFormatException($"{where}.interface {value} names no interface (the result has {interfaceCount})");
            }

            index = value;
        }

        return new CniIpConfig(address, gateway, index);
    }

    private static CniRoute ParseRoute(JsonNode? node, string where)
    {
        JsonObject item = node as JsonObject ?? throw new CniFormatException($"{where} is not an object");
        CidrAddress destination = Cidr(Json.RequiredString(item, "dst", where), $"{where}.dst");
        IPAddress? gateway = OptionalIp(item, "gw", where);
        if (gateway is not null && gateway.AddressFamily != destination.Address.AddressFamily)
        {
            throw new CniFormatException($"{where}.gw {gateway} is not of the destination's family ({destination})");
        }

        return new CniRoute(destination, gateway);
    }

    private static CniDns ParseDns(JsonNode? node, string where)
    {
        JsonObject dns = node as JsonObject ?? throw new CniFormatException($"{where} is not an object");
        return new CniDns(
            Json.StringArray(dns, "nameservers", where),
            Json.OptionalString(dns, "domain", where),
            Json.StringArray(dns, "search", where),
            Json.StringArray(dns, "options", where));
    }

    private static CidrAddress Cidr(string text, string where) =>
        CidrAddress.TryParse(text, out CidrAddress value) ? value : throw new CniFormatException($"{where} \"{text}\" is not an address with a prefix length (10.1.0.5/16)");

    private static IPAddress? OptionalIp(JsonObject item, string key, string where)
    {
        string? text = Json.OptionalString(item, key, where);
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        return IPAddress.TryParse(text, out IPAddress? address) && !text.Contains('/', StringComparison.Ordinal)
            ? address
            : throw new CniFormatException($"{where}.{key} \"{text}\" is not an IP address");
    }

    private static JsonObject Omit(JsonObject item)
    {
        foreach (string key in item.Where(p => p.Value is null).Select(p => p.Key).ToList())
        {
            item.Remove(key);
        }

        return item;
    }

    private static JsonArray Strings(ImmutableArray<string> values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
}

/// <summary>Checked reads of JSON fields, with errors that name the field, and compact writes.</summary>
public static class Json
{
    private static readonly JsonWriterOptions WriterOptions = new()
    {
        // Plugins' messages quote names ('b', "eth0"); the default encoder would print them as \u0027.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Compact JSON text of <paramref name="node"/>, with quotes and apostrophes left readable.</summary>
    public static string Write(JsonNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            node.WriteTo(writer);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    internal static string RequiredString(JsonObject item, string key, string where) =>
        OptionalString(item, key, where) ?? throw new CniFormatException($"{where}.{key} is missing");

    internal static string? OptionalString(JsonObject item, string key, string where)
    {
        JsonNode? node = item[key];
        if (node is null)
        {
            return null;
        }

        return node.GetValueKind() == JsonValueKind.String
            ? node.GetValue<string>()
            : throw new CniFormatException($"{where}.{key} is not a string: {node.ToJsonString()}");
    }

    internal static IEnumerable<JsonNode?> Array(JsonObject item, string key, string where)
    {
        JsonNode? node = item[key];
        return node switch
        {
            null => [],
            JsonArray array => array,
            _ => throw new CniFormatException($"{where}.{key} is not an array: {node.ToJsonString()}"),
        };
    }

    internal static ImmutableArray<string> StringArray(JsonObject item, string key, string where) =>
        Array(item, key, where)
            .Select((n, i) => n is not null && n.GetValueKind() == JsonValueKind.String
                ? n.GetValue<string>()
                : throw new CniFormatException($"{where}.{key}[{i.ToString(CultureInfo.InvariantCulture)}] is not a string"))
            .ToImmutableArray();
}
