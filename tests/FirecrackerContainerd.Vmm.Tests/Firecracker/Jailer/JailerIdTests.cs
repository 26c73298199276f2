using FirecrackerContainerd.Vmm.Firecracker.Jailer;

namespace FirecrackerContainerd.Vmm.Tests.Firecracker.Jailer;

public class JailerIdTests
{
    [Theory]
    [InlineData("default#vm1")]
    [InlineData("k8s.io#3f0c2a1b_sandbox.0")]
    [InlineData("ns#")]
    [InlineData("#")]
    [InlineData("ünïcødé#vm")]
    [InlineData("a-namespace-of-more-than-forty-characters-long#and-a-vm-id-that-is-long-as-well-0123456789abcdef")]
    public void Every_vm_directory_name_maps_to_an_id_the_jailer_accepts(string vmDirName)
    {
        string id = JailerId.For(vmDirName);

        Assert.True(JailerId.IsValid(id), id);
        Assert.Null(JailerContract.ValueProblem("id", id));
        Assert.InRange(id.Length, 1, JailerId.MaxLength);
    }

    [Fact]
    public void The_id_is_a_readable_prefix_and_a_hash_of_the_whole_name()
    {
        string id = JailerId.For("default#vm_1.a");

        Assert.StartsWith("default-vm-1-a-", id, StringComparison.Ordinal);
        Assert.Matches("^default-vm-1-a-[0-9a-f]{16}$", id);
        Assert.Equal(id, JailerId.For("default#vm_1.a"));
    }

    [Theory]
    [InlineData("ns#a_b", "ns#a.b")]
    [InlineData("ns#a#b", "ns#a-b")]
    [InlineData("ns#0123456789012345678901234567890123456789-one", "ns#0123456789012345678901234567890123456789-two")]
    public void Names_that_sanitize_or_truncate_alike_still_get_different_ids(string one, string other)
    {
        Assert.NotEqual(JailerId.For(one), JailerId.For(other));
    }

    [Theory]
    [InlineData("vm.1")]
    [InlineData("vm_1")]
    [InlineData("ns#vm")]
    [InlineData("")]
    [InlineData("vm1\n")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123456789")]
    public void Ids_the_jailer_would_refuse_are_refused(string id)
    {
        Assert.False(JailerId.IsValid(id));
        Assert.NotNull(JailerContract.ValueProblem("id", id));
        var e = Assert.Throws<ArgumentException>(() => JailerId.Validate(id));
        Assert.Contains("cannot be a jailer id", e.Message, StringComparison.Ordinal);
    }
}
