namespace FirecrackerContainerd.Ttrpc;

/// <summary>Call metadata: keys are lower-cased, and a key may carry several values (one wire pair each).</summary>
public sealed class TtrpcMetadata
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);

    /// <summary>An empty metadata set.</summary>
    public static TtrpcMetadata Empty { get; } = new();

    /// <summary>Number of distinct keys.</summary>
    public int Count => _values.Count;

    /// <summary>Adds one value under <paramref name="key"/> (lower-cased).</summary>
    public TtrpcMetadata Add(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        if (ReferenceEquals(this, Empty))
        {
            throw new InvalidOperationException("the shared empty metadata cannot be changed");
        }

        string lowered = key.ToLowerInvariant();
        if (!_values.TryGetValue(lowered, out var list))
        {
            list = [];
            _values[lowered] = list;
        }

        list.Add(value);
        return this;
    }

    /// <summary>The values under <paramref name="key"/> (case-insensitive), or an empty list.</summary>
    public IReadOnlyList<string> Get(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _values.TryGetValue(key.ToLowerInvariant(), out var list) ? list : [];
    }

    /// <summary>The first value under <paramref name="key"/>, or null.</summary>
    public string? GetFirst(string key)
    {
        var values = Get(key);
        return values.Count > 0 ? values[0] : null;
    }

    /// <summary>Every (key, value) pair, in the order they will be sent.</summary>
    public IEnumerable<KeyValuePair<string, string>> Pairs()
    {
        foreach (var (key, list) in _values)
        {
            foreach (string value in list)
            {
                yield return new KeyValuePair<string, string>(key, value);
            }
        }
    }
}
