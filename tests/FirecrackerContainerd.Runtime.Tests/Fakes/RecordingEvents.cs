using System.Collections.Concurrent;
using FirecrackerContainerd.Shim.Events;
using Google.Protobuf;

namespace FirecrackerContainerd.Runtime.Tests.Fakes;

/// <summary>containerd's events service as the shim sees it: every published event, in order.</summary>
internal sealed class RecordingEvents : IEventPublisher
{
    public ConcurrentQueue<(string Topic, IMessage Event)> Published { get; } = new();

    public Task PublishAsync(string topic, IMessage taskEvent, CancellationToken cancellationToken)
    {
        Published.Enqueue((topic, taskEvent));
        return Task.CompletedTask;
    }

    /// <summary>The published events of <paramref name="topic"/>, of type <typeparamref name="T"/>.</summary>
    public IReadOnlyList<T> Of<T>(string topic)
        where T : IMessage => [.. Published.Where(p => p.Topic == topic).Select(p => p.Event).OfType<T>()];
}
