using System.Threading.Channels;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.Containerd.Types;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Events;

/// <summary>Task events waiting for the host's long poll (eventbridge GetEvent), in order.</summary>
internal sealed class EventQueue
{
    /// <summary>The ttrpc service the host polls.</summary>
    public const string ServiceName = ServiceNames.EventBridge;

    private readonly Channel<Envelope> _events = Channel.CreateUnbounded<Envelope>(new UnboundedChannelOptions { SingleReader = false });

    /// <summary>Queues <paramref name="message"/> under <paramref name="topic"/> (for example /tasks/exit).</summary>
    public void Publish(string topic, IMessage message)
    {
        _events.Writer.TryWrite(new Envelope
        {
            Timestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
            Namespace = "default",
            Topic = topic,
            Event = new Any { TypeUrl = "containerd.events." + message.Descriptor.Name, Value = message.ToByteString() },
        });
    }

    public void Register(TtrpcServiceRegistry registry)
    {
        registry.AddUnary<Empty, Envelope>(ServiceName, "GetEvent", Empty.Parser,
            async (_, context) => await _events.Reader.ReadAsync(context.CancellationToken).ConfigureAwait(false));
    }
}
