using System.Diagnostics;
using FirecrackerContainerd.Vsock.Packet;
using FirecrackerContainerd.Vsock.Virtio;

namespace FirecrackerContainerd.Vsock.Tests.Virtio;

public sealed class GuestFuzzTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(5);

    [Fact]
    public void Random_rings_descriptors_and_headers_never_escape_guest_memory_or_throw()
    {
        int seed = FuzzSeed.Choose(output, null);
        var random = new Random(seed);
        using var ram = new GuestRam(256 * 1024);
        var rxDriver = new DriverQueue(ram, GuestRam.GuestBase, 64);
        var txDriver = new DriverQueue(ram, GuestRam.GuestBase + 0x4000, 64);
        var backend = new RecordingBackend();
        var queues = new VirtioVsockQueues(rxDriver.CreateDeviceQueue(), txDriver.CreateDeviceQueue(),
            new VsockPacketValidator(3), backend, () => { }, () => { }, _ => { });
        var clock = Stopwatch.StartNew();
        long rounds = 0;
        while (clock.Elapsed < Budget)
        {
            // Descriptors: mostly plausible, sometimes wild, always random links and flags.
            for (ushort i = 0; i < 64; i++)
            {
                ulong address = random.Next(4) == 0
                    ? (ulong)random.NextInt64()
                    : GuestRam.GuestBase + (ulong)random.Next(ram.Size);
                uint length = random.Next(3) == 0 ? (uint)random.Next() : (uint)random.Next(8192);
                txDriver.SetDescriptor(i, address, length, (ushort)random.Next(8), (ushort)random.Next(80));
                rxDriver.SetDescriptor(i, address, length, (ushort)random.Next(8), (ushort)random.Next(80));
            }
            // Headers in the data area: random bytes, sometimes with a valid-looking cid pair.
            Span<byte> data = ram.Bytes(GuestRam.GuestBase + 0x10000, ram.Size - 0x10000);
            random.NextBytes(data[..4096]);
            if (random.Next(2) == 0)
            {
                new VsockHeader(3, 2, (uint)random.Next(), (uint)random.Next(), (uint)random.Next(70_000), 1,
                    (VsockOp)random.Next(9), (uint)random.Next(4), (uint)random.Next(), (uint)random.Next()).Write(data);
            }
            for (int i = 0; i < random.Next(1, 80); i++)
            {
                txDriver.MakeAvailable((ushort)random.Next(70));
                rxDriver.MakeAvailable((ushort)random.Next(70));
            }
            if (random.Next(10) == 0)
            {
                txDriver.PublishAvailIndex((ushort)random.Next());
            }
            backend.ToGuest.Enqueue((new VsockHeader(2, 3, 1, 2, 0, 1, VsockOp.Rw, 0, 0, 0), new byte[random.Next(70_000)]));

            queues.ProcessTx();

            foreach (GuestPacket packet in backend.Received)
            {
                Assert.True(packet.Payload.Length <= VsockLimits.MaxPayload, $"seed {seed}");
                Assert.Equal(packet.Header.Length, (uint)packet.Payload.Length);
                Assert.Equal(3ul, packet.Header.SrcCid);
            }
            backend.Received.Clear();
            rounds++;
            if (queues.Tx.BrokenReason is not null || queues.Rx.BrokenReason is not null)
            {
                // A broken driver only kills its own queues; start over with fresh ones.
                rxDriver = new DriverQueue(ram, GuestRam.GuestBase, 64);
                txDriver = new DriverQueue(ram, GuestRam.GuestBase + 0x4000, 64);
                ram.Bytes(GuestRam.GuestBase, 0x8000).Clear();
                queues = new VirtioVsockQueues(rxDriver.CreateDeviceQueue(), txDriver.CreateDeviceQueue(),
                    new VsockPacketValidator(3), backend, () => { }, () => { }, _ => { });
            }
        }
        Assert.True(rounds > 0);
    }

    [Fact]
    public void Random_header_bytes_are_either_refused_or_parsed_into_a_consistent_packet()
    {
        var random = new Random(FuzzSeed.Choose(output, null));
        var validator = new VsockPacketValidator(3);
        byte[] bytes = new byte[VsockHeader.Size];
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(1))
        {
            random.NextBytes(bytes);
            if (random.Next(2) == 0)
            {
                BitConverter.TryWriteBytes(bytes.AsSpan(0), 3ul);
                BitConverter.TryWriteBytes(bytes.AsSpan(8), 2ul);
                BitConverter.TryWriteBytes(bytes.AsSpan(28), (ushort)1);
                BitConverter.TryWriteBytes(bytes.AsSpan(24), (uint)random.Next(70_000));
            }
            long available = random.Next(70_000);
            TxParseResult result = validator.Parse(VsockHeader.Read(bytes), available, span => span.Length);
            if (result.Packet is { } packet)
            {
                Assert.True(packet.Payload.Length <= Math.Min(available, VsockLimits.MaxPayload));
                Assert.InRange((ushort)packet.Header.Op, (ushort)1, (ushort)7);
            }
            else
            {
                Assert.NotNull(result.Error);
            }
        }
    }
}
