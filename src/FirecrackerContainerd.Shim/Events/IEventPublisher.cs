using Google.Protobuf;

namespace FirecrackerContainerd.Shim.Events;

/// <summary>Sends task events to containerd, in the order they are published.</summary>
public interface IEventPublisher
{
    /// <summary>Publishes <paramref name="taskEvent"/> under <paramref name="topic"/>.</summary>
    Task PublishAsync(string topic, IMessage taskEvent, CancellationToken cancellationToken);
}
