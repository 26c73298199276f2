using System.Net.Sockets;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Vsock.Unix;

/// <summary>Bounds of one dial through a hybrid vsock socket.</summary>
/// <param name="Timeout">How long to keep trying in all (the guest may still be booting).</param>
/// <param name="RetryInterval">Pause between attempts.</param>
/// <param name="AckTimeout">How long one attempt waits for the "OK" line.</param>
public sealed record HybridVsockDialOptions(TimeSpan Timeout, TimeSpan RetryInterval, TimeSpan AckTimeout)
{
    /// <summary>30 s in all, an attempt every 100 ms, 5 s for each acknowledgement.</summary>
    public static HybridVsockDialOptions Default { get; } =
        new(TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5));
}

/// <summary>
/// Connects from the host to a guest vsock port through Firecracker's hybrid vsock: connect to the VMM's
/// Unix socket, write <c>CONNECT &lt;port&gt;\n</c>, read <c>OK &lt;host port&gt;\n</c>. The same protocol is
/// served by Firecracker and by our vhost-user device for QEMU, whose side of it is <see cref="HybridVsockMuxer"/>;
/// the two lines are <see cref="ConnectRequest"/> and <see cref="ConnectAcknowledgement"/>.
/// </summary>
public static class HybridVsockDialer
{
    /// <summary>Dials guest port <paramref name="port"/> through <paramref name="udsPath"/>, retrying until the options' timeout.</summary>
    public static async Task<Socket> DialAsync(
        string udsPath, uint port, HybridVsockDialOptions? options, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(udsPath);
        options ??= HybridVsockDialOptions.Default;
        DateTime deadline = DateTime.UtcNow + options.Timeout;
        string lastError = "no attempt was made";
        int attempts = 0;
        while (true)
        {
            attempts++;
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                attempt.CancelAfter(options.AckTimeout);
                // The socket's directory may belong to the jailed device: what is there is connected to only if it is a socket.
                using (UnixSocketPath path = UnixSocketPath.ForExistingSocket(udsPath))
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path.ConnectPath), attempt.Token).ConfigureAwait(false);
                }

                await socket.SendAsync(ConnectRequest.Format(port), SocketFlags.None, attempt.Token).ConfigureAwait(false);
                string ack = await ConnectAcknowledgement.ReadLineAsync(socket, attempt.Token).ConfigureAwait(false);
                if (ConnectAcknowledgement.TryParse(ack, out _))
                {
                    return socket;
                }

                lastError = $"unexpected answer \"{ack}\"";
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                lastError = $"no acknowledgement within {options.AckTimeout.TotalSeconds:0.#} s";
            }
            catch (Exception e) when (e is SocketException or IOException)
            {
                lastError = e.Message;
            }

            socket.Dispose();
            if (DateTime.UtcNow + options.RetryInterval >= deadline)
            {
                throw new TimeoutException(
                    $"dial vsock port {port} through {udsPath}: gave up after {attempts} attempts in {options.Timeout.TotalSeconds:0.#} s: {lastError}");
            }

            await Task.Delay(options.RetryInterval, cancellationToken).ConfigureAwait(false);
        }
    }
}
