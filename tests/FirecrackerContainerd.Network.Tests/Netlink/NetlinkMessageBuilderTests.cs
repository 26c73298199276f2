using FirecrackerContainerd.Network.Netlink;
using FirecrackerContainerd.Network.Tests.Support;

namespace FirecrackerContainerd.Network.Tests.Netlink;

public class NetlinkMessageBuilderTests
{
    [Fact]
    public void Builder_writes_header_fixed_part_and_padded_attributes()
    {
        byte[] message = new NetlinkMessageBuilder(16, 0x0005)
            .Fixed(Bytes.Hex("aabbcc"))
            .AttributeString(3, "ab")
            .AttributeU32(4, 0x01020304)
            .Build(sequence: 9);

        Assert.Equal(Bytes.Show(Bytes.Of(
            "24000000",  // nlmsg_len 36
            "1000",      // nlmsg_type 16
            "0500",      // nlmsg_flags REQUEST|ACK
            "09000000",  // nlmsg_seq 9
            "00000000",  // nlmsg_pid 0 (the kernel)
            "aabbcc00",  // fixed part, padded to 4 bytes
            "0700 0300", // nla_len 7, nla_type 3
            "616200 00", // "ab\0", one byte of padding
            "0800 0400", // nla_len 8, nla_type 4
            "04030201")), Bytes.Show(message));
    }

    [Fact]
    public void Nested_attributes_carry_the_length_of_everything_inside()
    {
        byte[] message = new NetlinkMessageBuilder(1, 0)
            .BeginNested(2)
                .AttributeU32(3, 7)
                .BeginNested(4)
                .EndNested()
            .EndNested()
            .Build(1);

        Assert.Equal(Bytes.Show(Bytes.Of(
            "20000000 0100 0000 01000000 00000000", // header: len 32, type 1, flags 0, seq 1, pid 0
            "1000 0200",                            // nested 2: nla_len 16
            "0800 0300 07000000",                   //   u32 attribute 3 = 7
            "0400 0400")), Bytes.Show(message));    //   empty nested 4: nla_len 4
    }

    [Fact]
    public void Build_refuses_a_message_with_an_open_nest()
    {
        NetlinkMessageBuilder builder = new NetlinkMessageBuilder(1, 0).BeginNested(2);
        Assert.Throws<InvalidOperationException>(() => builder.Build(1));
    }
}
