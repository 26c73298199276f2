using FirecrackerContainerd.Vmm.Jail;

namespace FirecrackerContainerd.Vmm.Tests.Jail;

public sealed class UidAllocatorTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Two_allocators_on_one_directory_never_hand_out_the_same_uid()
    {
        var first = new UidAllocator(_dir.Path, 1000, 2);
        var second = new UidAllocator(_dir.Path, 1000, 2);

        using UidLease a = first.Acquire("a");
        using UidLease b = second.Acquire("b");

        Assert.Equal(1000u, a.Uid);
        Assert.Equal(1001u, b.Uid);
    }

    [Fact]
    public void An_exhausted_range_is_an_error_naming_the_range_and_the_lock_directory()
    {
        var allocator = new UidAllocator(_dir.Path, 1000, 1);
        using UidLease held = allocator.Acquire("a");

        var e = Assert.Throws<InvalidOperationException>(() => new UidAllocator(_dir.Path, 1000, 1).Acquire("vm-b"));

        Assert.Contains("vm \"vm-b\"", e.Message, StringComparison.Ordinal);
        Assert.Contains("1000..1000", e.Message, StringComparison.Ordinal);
        Assert.Contains(_dir.Path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_range_is_an_error_before_any_lock_is_taken()
    {
        var e = Assert.Throws<InvalidOperationException>(() => new UidAllocator(_dir.Path, 1000, 0).Acquire("vm"));

        Assert.Contains("count is 0", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.Path));
    }

    [Fact]
    public void A_disposed_lease_frees_its_uid_for_the_next_VM()
    {
        var allocator = new UidAllocator(_dir.Path, 1000, 1);
        allocator.Acquire("a").Dispose();

        using UidLease again = new UidAllocator(_dir.Path, 1000, 1).Acquire("b");

        Assert.Equal(1000u, again.Uid);
    }

    [Fact]
    public async Task A_holder_that_dies_frees_its_uid_without_any_clean_up()
    {
        // flock(1) holds the lock as a separate process (-o: its child does not share it), killed as a crashed shim would be.
        using var holder = System.Diagnostics.Process.Start("flock", ["-x", "-o", Path.Combine(_dir.Path, "1000.lock"), "sleep", "60"]);
        var allocator = new UidAllocator(_dir.Path, 1000, 1);
        Assert.True(await Eventually(() => Throws(() => allocator.Acquire("b").Dispose())), "the other process never took the lock");

        holder.Kill(entireProcessTree: true);
        await holder.WaitForExitAsync();

        using UidLease lease = allocator.Acquire("b");
        Assert.Equal(1000u, lease.Uid);
    }

    private static bool Throws(Action action)
    {
        try
        {
            action();
            return false;
        }
        catch (InvalidOperationException)
        {
            return true;
        }
    }

    private static async Task<bool> Eventually(Func<bool> condition)
    {
        for (int i = 0; i < 100; i++)
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(50);
        }

        return false;
    }
}
