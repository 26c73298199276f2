using FirecrackerContainerd.Vsock.Connections;
using FirecrackerContainerd.Vsock.Packet;

namespace FirecrackerContainerd.Vsock.Tests.Connections;

public sealed class VsockConnectionTests
{
    private const ulong GuestCid = 3;
    private static readonly ConnectionKey Key = new(1u << 30, 10789);

    private static GuestPacket FromGuest(VsockOp op, byte[]? payload = null, uint bufAlloc = 65536, uint fwdCnt = 0, uint flags = 0) =>
        new(new VsockHeader(GuestCid, 2, Key.PeerPort, Key.LocalPort, (uint)(payload?.Length ?? 0), 1, op, flags, bufAlloc, fwdCnt), payload ?? []);

    private static VsockConnection Established(uint peerBufAlloc = 65536)
    {
        var connection = VsockConnection.HostInitiated(Key, GuestCid);
        Assert.Equal(VsockOp.Request, connection.TakeRxPacket(new byte[64], out _)!.Value.Op);
        Assert.Equal(GuestPacketOutcome.Established, connection.OnGuestPacket(FromGuest(VsockOp.Response, bufAlloc: peerBufAlloc)));
        return connection;
    }

    [Fact]
    public void A_host_initiated_connection_sends_a_request_and_is_established_by_the_response()
    {
        var connection = VsockConnection.HostInitiated(Key, GuestCid);

        VsockHeader request = connection.TakeRxPacket(new byte[64], out int length)!.Value;

        Assert.Equal(VsockOp.Request, request.Op);
        Assert.Equal((2ul, GuestCid, Key.LocalPort, Key.PeerPort), (request.SrcCid, request.DstCid, request.SrcPort, request.DstPort));
        Assert.Equal(0, length);
        Assert.Equal(GuestPacketOutcome.Established, connection.OnGuestPacket(FromGuest(VsockOp.Response)));
        Assert.Equal(ConnectionState.Established, connection.State);
    }

    [Fact]
    public void A_response_before_the_request_left_resets_the_connection()
    {
        var connection = VsockConnection.HostInitiated(Key, GuestCid);

        Assert.Equal(GuestPacketOutcome.Violation, connection.OnGuestPacket(FromGuest(VsockOp.Response)));
        Assert.Equal(VsockOp.Rst, connection.TakeRxPacket(new byte[64], out _)!.Value.Op);
    }

    [Fact]
    public void Data_before_the_connection_is_established_resets_it()
    {
        var connection = VsockConnection.HostInitiated(Key, GuestCid);
        connection.TakeRxPacket(new byte[64], out _);

        Assert.Equal(GuestPacketOutcome.Violation, connection.OnGuestPacket(FromGuest(VsockOp.Rw, [1, 2, 3])));
        Assert.Equal(ConnectionState.Killed, connection.State);
    }

    [Fact]
    public void Host_data_is_sent_only_within_the_guest_credit()
    {
        VsockConnection connection = Established(peerBufAlloc: 10);
        connection.AppendHostData(new byte[25]);
        byte[] payload = new byte[4096];

        VsockHeader first = connection.TakeRxPacket(payload, out int firstLength)!.Value;
        VsockHeader second = connection.TakeRxPacket(payload, out int secondLength)!.Value;

        Assert.Equal((VsockOp.Rw, 10), (first.Op, firstLength));
        Assert.Equal((VsockOp.CreditRequest, 0), (second.Op, secondLength));
        Assert.Null(connection.TakeRxPacket(payload, out _));
        Assert.Equal(0u, connection.PeerCredit);

        // The guest consumed the 10 bytes: its fwd_cnt opens the window again.
        connection.OnGuestPacket(FromGuest(VsockOp.CreditUpdate, bufAlloc: 10, fwdCnt: 10));
        Assert.Equal(10u, connection.PeerCredit);
        Assert.Equal(VsockOp.Rw, connection.TakeRxPacket(payload, out int thirdLength)!.Value.Op);
        Assert.Equal(10, thirdLength);
    }

    [Fact]
    public void A_packet_never_carries_more_than_the_rx_buffer_holds()
    {
        VsockConnection connection = Established();
        connection.AppendHostData(new byte[10_000]);

        connection.TakeRxPacket(new byte[4096], out int length);

        Assert.Equal(4096, length);
        Assert.Equal(4096u, connection.TxCount);
    }

    [Fact]
    public void Host_bytes_keep_their_order_across_the_staging_ring()
    {
        VsockConnection connection = Established(peerBufAlloc: 1 << 20);
        byte[] sent = Enumerable.Range(0, 200_000).Select(i => (byte)(i * 7)).ToArray();
        var received = new List<byte>();
        int offset = 0;
        byte[] payload = new byte[5000];
        while (received.Count < sent.Length)
        {
            offset += connection.AppendHostData(sent.AsSpan(offset, Math.Min(3333, sent.Length - offset)));
            while (connection.TakeRxPacket(payload, out int length) is { Op: VsockOp.Rw })
            {
                received.AddRange(payload.AsSpan(0, length).ToArray());
            }
            connection.OnGuestPacket(FromGuest(VsockOp.CreditUpdate, bufAlloc: 1 << 20, fwdCnt: connection.TxCount));
        }

        Assert.Equal(sent, received);
    }

    [Fact]
    public void The_guest_hears_of_consumed_bytes_before_its_credit_runs_out()
    {
        VsockConnection connection = Established();
        uint chunk = VsockConnection.BufAlloc / 4;
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(GuestPacketOutcome.Accepted, connection.OnGuestPacket(FromGuest(VsockOp.Rw, new byte[chunk])));
        }

        connection.OnHostWritten((int)chunk);
        VsockHeader update = connection.TakeRxPacket(new byte[64], out _)!.Value;

        Assert.Equal(VsockOp.CreditUpdate, update.Op);
        Assert.Equal(chunk, update.FwdCnt);
        Assert.Equal(VsockConnection.BufAlloc, update.BufAlloc);
    }

    [Fact]
    public void A_credit_request_is_answered_with_a_credit_update()
    {
        VsockConnection connection = Established();

        connection.OnGuestPacket(FromGuest(VsockOp.CreditRequest));

        Assert.Equal(VsockOp.CreditUpdate, connection.TakeRxPacket(new byte[64], out _)!.Value.Op);
    }

    [Fact]
    public void A_guest_sending_beyond_our_buffer_is_reset()
    {
        VsockConnection connection = Established();
        uint chunk = VsockLimits.MaxPayload;
        for (uint sent = 0; sent < VsockConnection.BufAlloc; sent += chunk)
        {
            Assert.Equal(GuestPacketOutcome.Accepted, connection.OnGuestPacket(FromGuest(VsockOp.Rw, new byte[chunk])));
        }

        Assert.Equal(GuestPacketOutcome.Violation, connection.OnGuestPacket(FromGuest(VsockOp.Rw, new byte[1])));
        Assert.Equal(VsockOp.Rst, connection.TakeRxPacket(new byte[64], out _)!.Value.Op);
    }

    [Fact]
    public void A_guest_reset_ends_the_connection_without_an_answer()
    {
        VsockConnection connection = Established();

        Assert.Equal(GuestPacketOutcome.PeerReset, connection.OnGuestPacket(FromGuest(VsockOp.Rst)));
        Assert.Null(connection.TakeRxPacket(new byte[64], out _));
    }

    [Fact]
    public void Shutdown_flags_from_the_guest_accumulate_and_data_after_send_shutdown_resets()
    {
        VsockConnection connection = Established();

        Assert.Equal(GuestPacketOutcome.PeerShutdown, connection.OnGuestPacket(FromGuest(VsockOp.Shutdown, flags: 1)));
        Assert.Equal(GuestPacketOutcome.PeerShutdown, connection.OnGuestPacket(FromGuest(VsockOp.Shutdown, flags: 2)));
        Assert.Equal(VsockShutdownFlags.Both, connection.PeerShutdown);
        Assert.Equal(GuestPacketOutcome.Violation, connection.OnGuestPacket(FromGuest(VsockOp.Rw, [1])));
    }

    [Fact]
    public void Host_end_of_file_is_announced_after_the_staged_bytes()
    {
        VsockConnection connection = Established();
        connection.AppendHostData(new byte[100]);
        connection.OnHostEof();
        byte[] payload = new byte[4096];

        Assert.Equal(VsockOp.Rw, connection.TakeRxPacket(payload, out _)!.Value.Op);
        VsockHeader shutdown = connection.TakeRxPacket(payload, out _)!.Value;

        Assert.Equal(VsockOp.Shutdown, shutdown.Op);
        Assert.Equal((uint)VsockShutdownFlags.Send, shutdown.Flags);
        Assert.Null(connection.TakeRxPacket(payload, out _));
    }

    [Fact]
    public void A_guest_initiated_connection_is_answered_once_the_host_accepts()
    {
        VsockHeader request = new(GuestCid, 2, 5555, 52, 0, 1, VsockOp.Request, 0, 65536, 0);
        var connection = VsockConnection.GuestInitiated(new ConnectionKey(52, 5555), GuestCid, request);
        Assert.False(connection.HasRxWork);

        connection.AcceptPeer();

        VsockHeader response = connection.TakeRxPacket(new byte[64], out _)!.Value;
        Assert.Equal((VsockOp.Response, 52u, 5555u), (response.Op, response.SrcPort, response.DstPort));
        Assert.Equal(65536u, connection.PeerCredit);
    }
}
