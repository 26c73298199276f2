namespace FirecrackerContainerd.IntegrationTests;

/// <summary>All tests that talk to the private containerd share one daemon and run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class PrivateContainerd : ICollectionFixture<ContainerdFixture>
{
    public const string Name = "containerd";
}
