namespace FirecrackerContainerd.Vmm.Machine;

/// <summary>An IO rate limiter made of an optional bandwidth bucket (bytes) and ops bucket (operations).</summary>
public sealed record RateLimiter(TokenBucket? Bandwidth = null, TokenBucket? Ops = null);

/// <summary>A token bucket: <paramref name="Size"/> tokens refilled every <paramref name="RefillTimeMs"/> milliseconds.</summary>
/// <param name="Size">Capacity of the bucket in tokens.</param>
/// <param name="RefillTimeMs">Milliseconds to refill a whole bucket.</param>
/// <param name="OneTimeBurst">Extra tokens available once at start, or null for none.</param>
public sealed record TokenBucket(long Size, long RefillTimeMs, long? OneTimeBurst = null);
