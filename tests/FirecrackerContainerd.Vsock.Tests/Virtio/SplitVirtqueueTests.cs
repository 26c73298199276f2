using FirecrackerContainerd.Vsock.Virtio;

namespace FirecrackerContainerd.Vsock.Tests.Virtio;

public sealed class SplitVirtqueueTests : IDisposable
{
    private const ulong Rings = GuestRam.GuestBase;
    private const ulong Buffers = GuestRam.GuestBase + 0x10000;
    private readonly GuestRam _ram = new();

    public void Dispose() => _ram.Dispose();

    [Fact]
    public void Pop_returns_a_valid_two_descriptor_chain_translated_into_host_memory()
    {
        var driver = new DriverQueue(_ram, Rings, 16);
        driver.SetDescriptor(3, Buffers, 44, DriverQueue.FlagNext, next: 7);
        driver.SetDescriptor(7, Buffers + 0x1000, 4096, DriverQueue.FlagWrite);
        driver.MakeAvailable(3);
        SplitVirtqueue queue = driver.CreateDeviceQueue();

        DescriptorChain? chain = queue.Pop();

        Assert.NotNull(chain);
        Assert.True(chain.IsValid, chain.Error);
        Assert.Equal(3, chain.Head);
        Assert.Equal(44, chain.ReadableLength);
        Assert.Equal(4096, chain.WritableLength);
        _ram.Bytes(Buffers, 4).Fill(0xab);
        Span<byte> copy = stackalloc byte[4];
        Assert.Equal(4, chain.CopyFromReadable(0, copy));
        Assert.Equal([0xab, 0xab, 0xab, 0xab], copy.ToArray());
        Assert.Null(queue.Pop());
    }

    [Fact]
    public void AddUsed_publishes_the_head_and_length_in_the_used_ring()
    {
        var driver = new DriverQueue(_ram, Rings, 8);
        driver.SetDescriptor(5, Buffers, 100, DriverQueue.FlagWrite);
        driver.MakeAvailable(5);
        SplitVirtqueue queue = driver.CreateDeviceQueue();

        DescriptorChain chain = queue.Pop()!;
        queue.AddUsed(chain.Head, 60);

        Assert.Equal([(5u, 60u)], driver.TakeUsed());
    }

    [Theory]
    [InlineData(0x1000ul, 16u)] // below guest RAM
    [InlineData(GuestRam.GuestBase + (1 << 20), 1u)] // just past the end
    [InlineData(GuestRam.GuestBase + (1 << 20) - 8, 16u)] // straddles the end
    [InlineData(ulong.MaxValue - 4, 16u)] // address + length wraps around
    public void Pop_marks_a_chain_outside_guest_memory_invalid(ulong address, uint length)
    {
        var driver = new DriverQueue(_ram, Rings, 8);
        driver.SetDescriptor(0, address, length, 0);
        driver.MakeAvailable(0);
        SplitVirtqueue queue = driver.CreateDeviceQueue();

        DescriptorChain chain = queue.Pop()!;

        Assert.False(chain.IsValid);
        Assert.Contains("outside guest memory", chain.Error);
    }

    [Fact]
    public void Pop_detects_a_descriptor_loop()
    {
        var driver = new DriverQueue(_ram, Rings, 8);
        driver.SetDescriptor(0, Buffers, 16, DriverQueue.FlagNext, next: 1);
        driver.SetDescriptor(1, Buffers, 16, DriverQueue.FlagNext, next: 0);
        driver.MakeAvailable(0);
        SplitVirtqueue queue = driver.CreateDeviceQueue();

        DescriptorChain chain = queue.Pop()!;

        Assert.False(chain.IsValid);
        Assert.Contains("loops", chain.Error);
    }

    [Fact]
    public void Pop_rejects_a_next_index_outside_the_queue()
    {
        var driver = new DriverQueue(_ram, Rings, 8);
        driver.SetDescriptor(0, Buffers, 16, DriverQueue.FlagNext, next: 8);
        driver.MakeAvailable(0);

        DescriptorChain chain = driver.CreateDeviceQueue().Pop()!;

        Assert.False(chain.IsValid);
        Assert.Contains("links to 8", chain.Error);
    }

    [Fact]
    public void Pop_rejects_a_head_index_outside_the_queue()
    {
        var driver = new DriverQueue(_ram, Rings, 8);
        driver.MakeAvailable(200);

        DescriptorChain chain = driver.CreateDeviceQueue().Pop()!;

        Assert.False(chain.IsValid);
        Assert.Equal(200, chain.Head);
    }

    [Fact]
    public void Pop_rejects_indirect_descriptors_that_were_not_negotiated()
    {
        var driver = new DriverQueue(_ram, Rings, 8);
        driver.SetDescriptor(0, Buffers, 16, DriverQueue.FlagIndirect);
        driver.MakeAvailable(0);

        DescriptorChain chain = driver.CreateDeviceQueue().Pop()!;

        Assert.False(chain.IsValid);
        Assert.Contains("indirect", chain.Error);
    }

    [Fact]
    public void Pop_rejects_a_chain_longer_than_the_byte_limit()
    {
        var driver = new DriverQueue(_ram, Rings, 8);
        driver.SetDescriptor(0, Buffers, 600_000, DriverQueue.FlagNext, next: 1);
        driver.SetDescriptor(1, Buffers, 600_000, 0);
        driver.MakeAvailable(0);

        DescriptorChain chain = driver.CreateDeviceQueue().Pop()!;

        Assert.False(chain.IsValid);
        Assert.Contains("longer than", chain.Error);
    }

    [Fact]
    public void A_driver_that_publishes_more_chains_than_the_queue_holds_breaks_only_that_queue()
    {
        var driver = new DriverQueue(_ram, Rings, 8);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        driver.PublishAvailIndex(9);

        Assert.Null(queue.Pop());
        Assert.NotNull(queue.BrokenReason);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(3u)]
    [InlineData(2048u)]
    public void Layout_refuses_sizes_that_are_zero_not_a_power_of_two_or_too_big(uint size)
    {
        ulong user = GuestRam.UserBase;
        Assert.Null(VirtqueueLayout.Create(_ram.Memory, size, user, user + 0x4000, user + 0x8000));
    }

    [Fact]
    public void Layout_refuses_rings_outside_guest_memory()
    {
        ulong user = GuestRam.UserBase;
        Assert.Null(VirtqueueLayout.Create(_ram.Memory, 256, user, user + 0x4000, user + (1 << 20) - 8));
        Assert.Null(VirtqueueLayout.Create(_ram.Memory, 256, GuestRam.GuestBase, user + 0x4000, user + 0x8000));
    }
}
