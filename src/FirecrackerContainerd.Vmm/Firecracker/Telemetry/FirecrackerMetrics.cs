using System.Text.Json;

namespace FirecrackerContainerd.Vmm.Firecracker.Telemetry;

/// <summary>One metrics line of Firecracker: a JSON object of metric groups, with its timestamp when present.</summary>
/// <param name="ReceivedAt">When the line was read from the FIFO.</param>
/// <param name="UtcTimestampMs">Firecracker's <c>utc_timestamp_ms</c>, or null when absent.</param>
/// <param name="Values">The whole object (a detached clone, safe to keep).</param>
public sealed record FirecrackerMetrics(DateTimeOffset ReceivedAt, long? UtcTimestampMs, JsonElement Values)
{
    /// <summary>Reads one counter such as <c>("api_server", "process_startup_time_us")</c>, or null when missing or not a number.</summary>
    public long? Counter(string group, string name) =>
        Values.TryGetProperty(group, out var g) && g.ValueKind == JsonValueKind.Object
        && g.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n)
            ? n
            : null;

    /// <summary>Parses one line; returns false with a reason for anything that is not a JSON object.</summary>
    public static bool TryParse(ReadOnlySpan<byte> line, DateTimeOffset receivedAt, out FirecrackerMetrics? metrics, out string? error)
    {
        metrics = null;
        try
        {
            var reader = new Utf8JsonReader(line, new JsonReaderOptions { MaxDepth = 16 });
            using var document = JsonDocument.ParseValue(ref reader);
            if (reader.Read())
            {
                error = "trailing data after the JSON object";
                return false;
            }

            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                error = $"expected a JSON object, got {root.ValueKind}";
                return false;
            }

            long? timestamp = root.TryGetProperty("utc_timestamp_ms", out var ts) && ts.TryGetInt64(out var t) ? t : null;
            metrics = new FirecrackerMetrics(receivedAt, timestamp, root.Clone());
            error = null;
            return true;
        }
        catch (JsonException e)
        {
            error = e.Message;
            return false;
        }
    }
}
