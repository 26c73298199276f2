namespace FirecrackerContainerd.TestSupport;

/// <summary>The guest agent published as a native binary into <c>artifacts/agent</c> (<see cref="NativeBinary"/>).</summary>
internal static class AgentBinary
{
    public static Task<string> RequireAsync(CancellationToken cancellationToken) =>
        NativeBinary.RequireAsync("Agent", "agent", "fc-agent", ["Shim", "Ttrpc", "Protos", "Core"], cancellationToken);
}
