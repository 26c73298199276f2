using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace FirecrackerContainerd.Vmm.Tests.Contract;

/// <summary>
/// Firecracker's OpenAPI (Swagger 2.0) description loaded at run time, and a validator for the
/// subset of Swagger 2.0 that file uses: paths with <c>{param}</c> templates, one body parameter per
/// operation with a <c>$ref</c> schema, and schemas made of type, required, properties,
/// additionalProperties, enum, minimum, maximum, items and <c>$ref</c>.
/// </summary>
/// <remarks>
/// YAML is parsed with YamlDotNet into a JSON tree. Plain scalars that read as integers or booleans
/// become numbers or booleans, everything else stays a string (status-code keys such as 204 are
/// looked up as strings). A schema with <c>properties</c> and no <c>additionalProperties</c> is
/// closed, because Firecracker deserializes every body with serde's deny_unknown_fields.
/// </remarks>
public sealed partial class SwaggerContract
{
    private readonly JsonObject _paths;
    private readonly JsonObject _definitions;
    private readonly List<(Regex Pattern, string Template)> _templates = [];

    private SwaggerContract(JsonObject root)
    {
        _paths = root["paths"]!.AsObject();
        _definitions = root["definitions"]!.AsObject();
        foreach (var (template, _) in _paths)
        {
            var pattern = "^" + ParamPattern().Replace(Regex.Escape(template).Replace(@"\{", "{", StringComparison.Ordinal), "[A-Za-z0-9_]+") + "$";
            _templates.Add((new Regex(pattern), template));
        }
    }

    /// <summary>Every path template of the description.</summary>
    public IEnumerable<string> PathTemplates => _templates.Select(t => t.Template);

    /// <summary>Loads the description copied next to the tests.</summary>
    public static SwaggerContract LoadDefault() =>
        Load(Path.Combine(AppContext.BaseDirectory, "firecracker-api.yaml"));

    /// <summary>Loads a description from a YAML file.</summary>
    public static SwaggerContract Load(string path)
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(path))
        {
            yaml.Load(reader);
        }

        var root = ToJson(yaml.Documents[0].RootNode) as JsonObject
            ?? throw new InvalidDataException($"{path}: the document is not a mapping");
        if (root["swagger"]?.GetValue<string>() != "2.0")
        {
            throw new InvalidDataException($"{path}: not a Swagger 2.0 description");
        }

        return new SwaggerContract(root);
    }

    /// <summary>Finds the path template matching <paramref name="path"/>, or null.</summary>
    public string? MatchPath(string path) => _templates.FirstOrDefault(t => t.Pattern.IsMatch(path)).Template;

    /// <summary>The status codes the description lists for an operation (e.g. "204", "400", "default").</summary>
    public IReadOnlyList<string> ResponseCodes(string method, string template) =>
        Operation(method, template)?["responses"]?.AsObject().Select(kv => kv.Key).ToList() ?? [];

    /// <summary>Validates one request; returns every violation (empty when it conforms).</summary>
    public IReadOnlyList<string> Validate(string method, string path, string? body)
    {
        var errors = new List<string>();
        var template = MatchPath(path);
        if (template is null)
        {
            errors.Add($"{method} {path}: no such path in the API description");
            return errors;
        }

        var operation = Operation(method, template);
        if (operation is null)
        {
            errors.Add($"{method} {path}: the API description has no {method.ToUpperInvariant()} on {template}");
            return errors;
        }

        var bodyParameter = operation["parameters"]?.AsArray()
            .Select(p => p!.AsObject())
            .FirstOrDefault(p => p["in"]?.GetValue<string>() == "body");
        if (bodyParameter is null)
        {
            if (!string.IsNullOrEmpty(body))
            {
                errors.Add($"{method} {path}: the operation takes no body, but one was sent");
            }

            return errors;
        }

        if (string.IsNullOrEmpty(body))
        {
            if (bodyParameter["required"]?.GetValue<bool>() == true)
            {
                errors.Add($"{method} {path}: a body is required");
            }

            return errors;
        }

        JsonElement document;
        try
        {
            document = JsonDocument.Parse(body).RootElement;
        }
        catch (JsonException e)
        {
            errors.Add($"{method} {path}: body is not JSON: {e.Message}");
            return errors;
        }

        ValidateValue(document, bodyParameter["schema"]!.AsObject(), "body", errors);
        return errors.Select(e => $"{method} {path}: {e}").ToList();
    }

    private JsonObject? Operation(string method, string template) =>
        _paths[template]?[method.ToLowerInvariant()] as JsonObject;

    private void ValidateValue(JsonElement value, JsonObject schema, string where, List<string> errors)
    {
        if (schema["$ref"] is JsonNode reference)
        {
            var name = reference.GetValue<string>().Replace("#/definitions/", "", StringComparison.Ordinal);
            var definition = _definitions[name]?.AsObject();
            if (definition is null)
            {
                errors.Add($"{where}: schema references unknown definition {name}");
                return;
            }

            ValidateValue(value, definition, $"{where}<{name}>", errors);
            return;
        }

        var type = schema["type"]?.GetValue<string>();
        if (type is not null && !HasType(value, type))
        {
            errors.Add($"{where}: expected {type}, got {value.ValueKind}");
            return;
        }

        if (schema["enum"] is JsonArray allowed)
        {
            var text = value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText();
            if (!allowed.Any(a => a!.ToString() == text))
            {
                errors.Add($"{where}: \"{text}\" is not one of [{string.Join(", ", allowed.Select(a => a!.ToString()))}]");
            }
        }

        if (value.ValueKind == JsonValueKind.Number)
        {
            if (schema["minimum"] is JsonNode min && value.GetDouble() < min.GetValue<long>())
            {
                errors.Add($"{where}: {value.GetRawText()} is below the minimum {min}");
            }

            if (schema["maximum"] is JsonNode max && value.GetDouble() > max.GetValue<long>())
            {
                errors.Add($"{where}: {value.GetRawText()} is above the maximum {max}");
            }
        }

        if (value.ValueKind == JsonValueKind.Array && schema["items"] is JsonObject items)
        {
            var i = 0;
            foreach (var item in value.EnumerateArray())
            {
                ValidateValue(item, items, $"{where}[{i++}]", errors);
            }
        }

        if (value.ValueKind == JsonValueKind.Object)
        {
            ValidateObject(value, schema, where, errors);
        }
    }

    private void ValidateObject(JsonElement value, JsonObject schema, string where, List<string> errors)
    {
        var properties = schema["properties"] as JsonObject;
        foreach (var required in schema["required"]?.AsArray() ?? [])
        {
            var name = required!.GetValue<string>();
            if (!value.TryGetProperty(name, out _))
            {
                errors.Add($"{where}: required property \"{name}\" is missing");
            }
        }

        var additional = schema["additionalProperties"];
        foreach (var property in value.EnumerateObject())
        {
            if (properties?[property.Name] is JsonObject propertySchema)
            {
                ValidateValue(property.Value, propertySchema, $"{where}.{property.Name}", errors);
            }
            else if (additional is JsonObject additionalSchema)
            {
                ValidateValue(property.Value, additionalSchema, $"{where}.{property.Name}", errors);
            }
            else if (additional is null ? properties is not null : additional.GetValueKind() == JsonValueKind.False)
            {
                errors.Add($"{where}: unknown property \"{property.Name}\"");
            }
        }
    }

    private static bool HasType(JsonElement value, string type) => type switch
    {
        "object" => value.ValueKind == JsonValueKind.Object,
        "array" => value.ValueKind == JsonValueKind.Array,
        "string" => value.ValueKind == JsonValueKind.String,
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "integer" => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out _),
        "number" => value.ValueKind == JsonValueKind.Number,
        _ => false,
    };

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv =>
            KeyValuePair.Create(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode seq => new JsonArray(seq.Children.Select(ToJson).ToArray()),
        YamlScalarNode scalar => ScalarToJson(scalar),
        _ => throw new InvalidDataException($"unsupported YAML node {node.NodeType} at {node.Start}"),
    };

    private static JsonValue ScalarToJson(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (scalar.Style != YamlDotNet.Core.ScalarStyle.Plain)
        {
            return JsonValue.Create(text);
        }

        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
        {
            return JsonValue.Create(number);
        }

        return text switch
        {
            "true" => JsonValue.Create(true),
            "false" => JsonValue.Create(false),
            _ => JsonValue.Create(text),
        };
    }

    [GeneratedRegex(@"\{[A-Za-z_]+\}")]
    private static partial Regex ParamPattern();
}
