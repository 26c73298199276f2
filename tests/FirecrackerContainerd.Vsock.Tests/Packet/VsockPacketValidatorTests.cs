using FirecrackerContainerd.Vsock.Packet;

namespace FirecrackerContainerd.Vsock.Tests.Packet;

public sealed class VsockPacketValidatorTests
{
    private const ulong GuestCid = 3;
    private readonly VsockPacketValidator _validator = new(GuestCid);

    private static VsockHeader Header(VsockOp op = VsockOp.Rw, uint length = 4, ulong src = GuestCid, ulong dst = 2, ushort type = 1) =>
        new(src, dst, 1234, 10789, length, type, op, 0, 65536, 0);

    private TxParseResult Parse(VsockHeader header, long available) =>
        _validator.Parse(header, available, span =>
        {
            span.Fill(0x5a);
            return span.Length;
        });

    [Fact]
    public void A_data_packet_from_the_guest_to_the_host_is_accepted_with_its_payload()
    {
        TxParseResult result = Parse(Header(), 4);

        Assert.NotNull(result.Packet);
        Assert.Equal([0x5a, 0x5a, 0x5a, 0x5a], result.Packet.Payload);
    }

    [Fact]
    public void A_header_survives_a_write_and_read_round_trip()
    {
        VsockHeader header = new(3, 2, 7, 8, 9, 1, VsockOp.Shutdown, 3, 65536, 77);
        byte[] bytes = new byte[VsockHeader.Size];
        header.Write(bytes);

        Assert.Equal(header, VsockHeader.Read(bytes));
    }

    [Theory]
    [InlineData(4ul, 2ul)] // spoofed source cid
    [InlineData(GuestCid, 5ul)] // another VM as destination
    [InlineData(GuestCid, 1ul)]
    public void Packets_with_wrong_cids_are_dropped_without_a_reset(ulong src, ulong dst)
    {
        TxParseResult result = Parse(Header(src: src, dst: dst), 4);

        Assert.Null(result.Packet);
        Assert.Null(result.ResetFor);
        Assert.Contains("cid", result.Error);
    }

    [Fact]
    public void A_non_stream_packet_is_answered_with_a_reset()
    {
        TxParseResult result = Parse(Header(type: 2), 4);

        Assert.Null(result.Packet);
        Assert.NotNull(result.ResetFor);
    }

    [Theory]
    [InlineData((ushort)0)]
    [InlineData((ushort)8)]
    [InlineData((ushort)0xffff)]
    public void An_unknown_op_is_refused(ushort op)
    {
        TxParseResult result = Parse(Header(op: (VsockOp)op, length: 0), 0);

        Assert.Null(result.Packet);
        Assert.Contains("unknown op", result.Error);
    }

    [Fact]
    public void A_payload_longer_than_64_KiB_is_refused()
    {
        TxParseResult result = Parse(Header(length: VsockLimits.MaxPayload + 1), 1 << 20);

        Assert.Null(result.Packet);
        Assert.Contains("exceeds", result.Error);
    }

    [Fact]
    public void A_payload_longer_than_the_chain_is_refused()
    {
        TxParseResult result = Parse(Header(length: 100), 99);

        Assert.Null(result.Packet);
        Assert.Contains("bytes in the chain", result.Error);
    }

    [Fact]
    public void A_control_packet_carrying_payload_is_refused()
    {
        TxParseResult result = Parse(Header(op: VsockOp.Request, length: 8), 8);

        Assert.Null(result.Packet);
    }
}
