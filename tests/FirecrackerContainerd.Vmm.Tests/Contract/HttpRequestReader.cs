using System.Text;

namespace FirecrackerContainerd.Vmm.Tests.Contract;

/// <summary>A parsed HTTP/1.1 request, with what Firecracker's HTTP server would object to in its headers.</summary>
public sealed record HttpRequest(string Method, string Path, string? Body, IReadOnlyList<string> HeaderProblems);

/// <summary>Reads HTTP/1.1 requests off a stream, keep-alive, bodies by Content-Length only (as Firecracker's server).</summary>
public sealed class HttpRequestReader(Stream stream)
{
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    /// <summary>Reads the next request, or null at a clean end of stream.</summary>
    public async Task<HttpRequest?> ReadAsync(int maxBodyBytes, CancellationToken ct)
    {
        int headerEnd;
        while ((headerEnd = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8)) < 0)
        {
            if (!await FillAsync(ct))
            {
                return _end == _start ? null : throw new IOException("connection closed inside a request head");
            }
        }

        var head = Encoding.ASCII.GetString(_buffer, _start, headerEnd);
        _start += headerEnd + 4;
        var lines = head.Split("\r\n");
        var requestLine = lines[0].Split(' ');
        if (requestLine.Length != 3 || requestLine[2] != "HTTP/1.1")
        {
            throw new IOException($"bad request line \"{lines[0]}\"");
        }

        var problems = new List<string>();
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }

        if (headers.ContainsKey("Transfer-Encoding"))
        {
            problems.Add($"{requestLine[0]} {requestLine[1]}: Transfer-Encoding is not supported by Firecracker; send Content-Length");
        }

        string? body = null;
        if (headers.TryGetValue("Content-Length", out var lengthText) && int.Parse(lengthText, System.Globalization.CultureInfo.InvariantCulture) is var length and > 0)
        {
            if (length > maxBodyBytes)
            {
                throw new IOException($"body of {length} bytes is over the {maxBodyBytes} byte limit");
            }

            while (_end - _start < length)
            {
                if (!await FillAsync(ct))
                {
                    throw new IOException("connection closed inside a request body");
                }
            }

            body = Encoding.UTF8.GetString(_buffer, _start, length);
            _start += length;
            if (!headers.TryGetValue("Content-Type", out var type) || type != "application/json")
            {
                problems.Add($"{requestLine[0]} {requestLine[1]}: Content-Type must be exactly application/json, got \"{type}\"");
            }
        }

        return new HttpRequest(requestLine[0], requestLine[1], body, problems);
    }

    private async Task<bool> FillAsync(CancellationToken ct)
    {
        if (_start > 0)
        {
            Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            throw new IOException("request head larger than the buffer");
        }

        var n = await stream.ReadAsync(_buffer.AsMemory(_end), ct);
        _end += n;
        return n > 0;
    }
}
