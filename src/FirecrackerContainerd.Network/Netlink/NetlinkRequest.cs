namespace FirecrackerContainerd.Network.Netlink;

/// <summary>A request ready to send, with the words its errors use.</summary>
/// <param name="Message">The message, whose sequence number the socket fills in.</param>
/// <param name="Operation">What is asked, for errors (e.g. <c>add ingress qdisc</c>).</param>
/// <param name="Device">The device it is about (<c>eth0 (ifindex 3)</c>), or null.</param>
internal sealed record NetlinkRequest(NetlinkMessageBuilder Message, string Operation, string? Device);
