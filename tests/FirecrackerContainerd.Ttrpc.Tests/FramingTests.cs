using FirecrackerContainerd.Ttrpc.Framing;

namespace FirecrackerContainerd.Ttrpc.Tests;

public class FramingTests
{
    [Fact]
    public void Header_is_big_endian_length_stream_type_flags()
    {
        var bytes = new byte[FrameHeader.Size];
        new FrameHeader(0x0102_0304, 0x0A0B_0C0D, FrameType.Data, FrameFlagBits.RemoteClosed | FrameFlagBits.NoData).Write(bytes);

        Assert.Equal(new byte[] { 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D, 3, 5 }, bytes);
        Assert.Equal(new FrameHeader(0x0102_0304, 0x0A0B_0C0D, FrameType.Data, FrameFlagBits.RemoteClosed | FrameFlagBits.NoData),
            FrameHeader.Read(bytes));
    }

    [Fact]
    public async Task Reader_assembles_frames_delivered_one_byte_at_a_time()
    {
        var wire = new MemoryStream();
        using (var writer = new FrameWriter(wire))
        {
            await writer.WriteAsync(1, FrameType.Request, FrameFlagBits.None, new byte[] { 9, 8, 7 }, CancellationToken.None);
            await writer.WriteAsync(3, FrameType.Request, FrameFlagBits.None, ReadOnlyMemory<byte>.Empty, CancellationToken.None);
        }

        var reader = new FrameReader(new OneByteStream(wire.ToArray()));
        var first = await reader.ReadAsync(CancellationToken.None);
        var second = await reader.ReadAsync(CancellationToken.None);
        var end = await reader.ReadAsync(CancellationToken.None);

        Assert.Equal(1u, first!.Header.StreamId);
        Assert.Equal(new byte[] { 9, 8, 7 }, first.Payload.ToArray());
        Assert.Equal(3u, second!.Header.StreamId);
        Assert.True(second.Payload.IsEmpty);
        Assert.Null(end);
    }

    [Fact]
    public async Task Reader_discards_an_oversized_body_and_stays_in_step()
    {
        var wire = new MemoryStream();
        int oversized = FrameHeader.MaxDataLength + 1;
        var header = new byte[FrameHeader.Size];
        new FrameHeader((uint)oversized, 5, FrameType.Request, FrameFlagBits.None).Write(header);
        wire.Write(header);
        wire.Write(new byte[oversized]);
        using (var writer = new FrameWriter(wire))
        {
            await writer.WriteAsync(7, FrameType.Request, FrameFlagBits.None, new byte[] { 42 }, CancellationToken.None);
        }

        wire.Position = 0;
        var reader = new FrameReader(wire);
        var big = await reader.ReadAsync(CancellationToken.None);
        var next = await reader.ReadAsync(CancellationToken.None);

        Assert.True(big!.Header.IsOversized);
        Assert.Equal((uint)oversized, big.Header.Length);
        Assert.True(big.Payload.IsEmpty);
        Assert.Equal(7u, next!.Header.StreamId);
        Assert.Equal(new byte[] { 42 }, next.Payload.ToArray());
    }

    [Fact]
    public async Task Reader_reports_a_stream_that_ends_inside_a_header()
    {
        var reader = new FrameReader(new MemoryStream(new byte[] { 0, 0, 0 }));
        var e = await Assert.ThrowsAsync<TtrpcProtocolException>(async () => await reader.ReadAsync(CancellationToken.None));
        Assert.Contains("3 of 10 header bytes", e.Message);
    }

    [Fact]
    public async Task Reader_reports_a_stream_that_ends_inside_a_body()
    {
        var bytes = new byte[FrameHeader.Size + 2];
        new FrameHeader(100, 1, FrameType.Request, FrameFlagBits.None).Write(bytes);
        var reader = new FrameReader(new MemoryStream(bytes));
        var e = await Assert.ThrowsAsync<TtrpcProtocolException>(async () => await reader.ReadAsync(CancellationToken.None));
        Assert.Contains("100-byte body of stream 1", e.Message);
    }

    [Fact]
    public async Task Writer_refuses_a_body_over_four_mebibytes()
    {
        using var writer = new FrameWriter(new MemoryStream());
        var e = await Assert.ThrowsAsync<ArgumentException>(async () =>
            await writer.WriteAsync(1, FrameType.Request, FrameFlagBits.None, new byte[FrameHeader.MaxDataLength + 1], CancellationToken.None));
        Assert.Contains("exceed maximum message size of 4194304", e.Message);
    }

    [Fact]
    public async Task Concurrent_writers_never_interleave_frames()
    {
        var wire = new MemoryStream();
        using (var writer = new FrameWriter(wire))
        {
            await Task.WhenAll(Enumerable.Range(0, 500).Select(i => Task.Run(async () =>
            {
                var body = new byte[1 + (i % 37)];
                Array.Fill(body, (byte)i);
                await writer.WriteAsync((uint)(2 * i + 1), FrameType.Response, FrameFlagBits.None, body, CancellationToken.None);
            })));
        }

        wire.Position = 0;
        var reader = new FrameReader(wire);
        var seen = new HashSet<uint>();
        while (await reader.ReadAsync(CancellationToken.None) is { } frame)
        {
            int i = (int)(frame.Header.StreamId - 1) / 2;
            Assert.Equal(1 + (i % 37), frame.Payload.Length);
            Assert.All(frame.Payload.ToArray(), b => Assert.Equal((byte)i, b));
            Assert.True(seen.Add(frame.Header.StreamId));
        }

        Assert.Equal(500, seen.Count);
    }

    /// <summary>Hands out at most one byte per read, the worst split a socket can produce.</summary>
    private sealed class OneByteStream(byte[] data) : MemoryStream(data)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, 1));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, 1)], cancellationToken);
    }
}
