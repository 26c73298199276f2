using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace FirecrackerContainerd.Agent.Oci;

/// <summary>A spec asks for something the guest cannot honour; the message names every such field.</summary>
internal sealed class UnsupportedSpecException(string what, IReadOnlyList<string> problems)
    : Exception($"{what} asks for what the guest cannot honour: {string.Join("; ", problems)}")
{
    /// <summary>One entry per field: its path in the spec, its value and the reason.</summary>
    public IReadOnlyList<string> Problems { get; } = problems;
}

/// <summary>
/// Checks an OCI spec against what the guest can honour before the runtime sees it. The guest's runtimes ignore
/// fields they do not know, so without this a spec's demand could be dropped in silence: every field must be one
/// of <see cref="SpecFields"/>, honoured by the runtime in use, and the paths it names for a bind mount's source or a
/// namespace to join must exist in the guest (they are the guest's paths: /proc/1/ns/pid joins the guest's own pid
/// namespace, and a host path such as /var/run/netns/x means nothing there).
/// </summary>
internal static partial class SpecCompatibility
{
    private const int MaxShownValue = 80;

    /// <summary>The runtime <paramref name="name"/> names (a binary name or path); an unknown one gets runc's subset.</summary>
    public static GuestRuntimes RuntimeOf(string name) =>
        Path.GetFileName(name).Contains("crun", StringComparison.Ordinal) ? GuestRuntimes.Crun : GuestRuntimes.Runc;

    /// <summary>
    /// Checks a container's config.json; bind sources and namespace paths are looked up with
    /// <paramref name="existsInGuest"/> (relative bind sources against <paramref name="bundle"/>).
    /// </summary>
    /// <exception cref="UnsupportedSpecException">naming every field the guest cannot honour.</exception>
    public static void CheckConfig(JsonObject spec, GuestRuntimes runtime, string bundle, Func<string, bool> existsInGuest, string what)
    {
        var problems = new List<string>();
        CheckVersion(spec["ociVersion"], problems);
        Walk(spec, SpecFields.Config, string.Empty, runtime, problems);
        CheckBindSources(spec["mounts"] as JsonArray, bundle, existsInGuest, problems);
        CheckNamespacePaths((spec["linux"] as JsonObject)?["namespaces"] as JsonArray, existsInGuest, problems);
        if (problems.Count > 0)
        {
            throw new UnsupportedSpecException(what, problems);
        }
    }

    /// <summary>Checks an exec's process spec.</summary>
    /// <exception cref="UnsupportedSpecException">naming every field the guest cannot honour.</exception>
    public static void CheckProcess(JsonObject process, GuestRuntimes runtime, string what)
    {
        var problems = new List<string>();
        Walk(process, SpecFields.Process, "process", runtime, problems);
        if (problems.Count > 0)
        {
            throw new UnsupportedSpecException(what, problems);
        }
    }

    private static void CheckVersion(JsonNode? version, List<string> problems)
    {
        if (version is null)
        {
            return;
        }

        if (version.GetValueKind() != JsonValueKind.String || !SupportedVersion().IsMatch(version.GetValue<string>()))
        {
            problems.Add($"ociVersion = {Show(version)}: the guest runs runtime-spec 1.x");
        }
    }

    private static void Walk(JsonNode? node, SpecShape shape, string path, GuestRuntimes runtime, List<string> problems)
    {
        if (!IsSet(node))
        {
            return;
        }

        if (shape.Refusal is not null)
        {
            problems.Add($"{path} = {Show(node)}: {shape.Refusal}");
            return;
        }

        if ((shape.HonouredBy & runtime) == 0)
        {
            problems.Add($"{path} = {Show(node)}: the guest's {Name(runtime)} does not implement it");
            return;
        }

        switch (shape.Kind)
        {
            case SpecShapeKind.Object when node is JsonObject obj:
                foreach ((string name, JsonNode? child) in obj)
                {
                    string childPath = Join(path, name);
                    if (shape.Fields!.TryGetValue(name, out SpecShape? field))
                    {
                        Walk(child, field, childPath, runtime, problems);
                    }
                    else if (IsSet(child))
                    {
                        problems.Add($"{childPath} = {Show(child)}: not a field of the OCI runtime spec (1.0 to 1.3) that the guest knows");
                    }
                }

                break;
            case SpecShapeKind.Array when node is JsonArray array:
                for (int i = 0; i < array.Count; i++)
                {
                    Walk(array[i], shape.Element!, $"{path}[{i}]", runtime, problems);
                }

                break;
            case SpecShapeKind.Map when node is JsonObject map:
                foreach ((string key, JsonNode? value) in map)
                {
                    Walk(value, shape.Element!, $"{path}[{JsonValue.Create(key).ToJsonString()}]", runtime, problems);
                }

                break;
            case SpecShapeKind.Value:
                break;
            default:
                problems.Add($"{path} = {Show(node)}: must be {(shape.Kind == SpecShapeKind.Array ? "an array" : "an object")}");
                break;
        }
    }

    private static void CheckBindSources(JsonArray? mounts, string bundle, Func<string, bool> existsInGuest, List<string> problems)
    {
        for (int i = 0; mounts is not null && i < mounts.Count; i++)
        {
            if (mounts[i] is not JsonObject mount || !IsBind(mount) || mount["source"] is not JsonValue sourceNode
                || sourceNode.GetValueKind() != JsonValueKind.String)
            {
                continue;
            }

            string source = sourceNode.GetValue<string>();
            string inGuest = Path.IsPathRooted(source) ? source : Path.Combine(bundle, source);
            if (!existsInGuest(inGuest))
            {
                string destination = mount["destination"] is JsonValue d && d.GetValueKind() == JsonValueKind.String ? d.GetValue<string>() : "?";
                problems.Add($"mounts[{i}] (bind {source} -> {destination}): its source does not exist inside the VM; " +
                    "a host path reaches the guest only as a drive mount (CreateVM DriveMounts)");
            }
        }
    }

    private static void CheckNamespacePaths(JsonArray? namespaces, Func<string, bool> existsInGuest, List<string> problems)
    {
        for (int i = 0; namespaces is not null && i < namespaces.Count; i++)
        {
            if (namespaces[i] is JsonObject ns && ns["path"] is JsonValue path && path.GetValueKind() == JsonValueKind.String
                && path.GetValue<string>() is { Length: > 0 } text && !existsInGuest(text))
            {
                problems.Add($"linux.namespaces[{i}].path = {Show(path)}: no such namespace inside the VM; a namespace of the host cannot be joined from there");
            }
        }
    }

    private static bool IsBind(JsonObject mount)
    {
        if (mount["type"] is JsonValue type && type.GetValueKind() == JsonValueKind.String && type.GetValue<string>() == "bind")
        {
            return true;
        }

        return mount["options"] is JsonArray options && options.Any(o =>
            o is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() is "bind" or "rbind");
    }

    // Absent, null and empty ask for nothing: a spec may spell "no hooks" as {} or "no label" as "".
    private static bool IsSet(JsonNode? node) => node switch
    {
        null => false,
        JsonObject obj => obj.Count > 0,
        JsonArray array => array.Count > 0,
        JsonValue value => value.GetValueKind() != JsonValueKind.String || value.GetValue<string>().Length > 0,
        _ => true,
    };

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    private static string Name(GuestRuntimes runtime) => runtime == GuestRuntimes.Crun ? "crun" : "runc";

    private static string Show(JsonNode? node)
    {
        string text = node?.ToJsonString() ?? "null";
        return text.Length <= MaxShownValue ? text : string.Create(CultureInfo.InvariantCulture, $"{text[..MaxShownValue]}...");
    }

    [GeneratedRegex(@"^1\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$")]
    private static partial Regex SupportedVersion();
}
