using System.Runtime.InteropServices;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Ttrpc.Tests;

/// <summary>Changes the process's effective ids for a moment, so it runs alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EffectiveIdChanges
{
    public const string Name = "effective id changes";
}

[Collection(EffectiveIdChanges.Name)]
public partial class PeerCredentialTests
{
    private const uint Nobody = 65534;

    [Fact]
    public async Task Peer_with_another_uid_is_refused_when_same_user_is_required()
    {
        Assert.True(GetEffectiveUserId() == 0, "this test switches its effective uid to connect as another user, so it must run as root");
        await using var harness = ServerHarness.Start(ServerTests.EchoServices(), new TtrpcServerOptions { RequireSameUser = true });
        File.SetUnixFileMode(harness.Directory, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(harness.SocketPath, (UnixFileMode)0b110_110_110);

        // The kernel records the peer's credentials at connect(), so switching back right after is enough.
        Assert.Equal(0, SetEffectiveGroupId(Nobody));
        Assert.Equal(0, SetEffectiveUserId(Nobody));
        Task<Client.TtrpcClient> connecting;
        try
        {
            connecting = harness.ConnectClientAsync();
            await connecting;
        }
        finally
        {
            Assert.Equal(0, SetEffectiveUserId(0));
            Assert.Equal(0, SetEffectiveGroupId(0));
        }

        await using var client = await connecting;
        var e = await Assert.ThrowsAsync<TtrpcException>(() => client.CallAsync(ServerTests.Echo, "Say", new StringValue { Value = "x" }, StringValue.Parser));
        Assert.Equal("ttrpc: closed", e.Message);
    }

    [LibraryImport("libc", EntryPoint = "seteuid")]
    private static partial int SetEffectiveUserId(uint uid);

    [LibraryImport("libc", EntryPoint = "setegid")]
    private static partial int SetEffectiveGroupId(uint gid);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();
}
