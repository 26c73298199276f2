using FirecrackerContainerd.Network.Links;
using FirecrackerContainerd.Network.Namespaces;

namespace FirecrackerContainerd.Network.Tap;

/// <summary>A tap redirected both ways with another link.</summary>
/// <param name="Link">The link the tap is redirected with (the pod's veth), as it was after the redirect.</param>
/// <param name="Tap">The tap, up, with the link's MTU.</param>
public sealed record TapRedirection(Link Link, Link Tap);

/// <summary>
/// Kata's tcfilter model: a tap beside a link (a CNI veth) in the same namespace, an ingress qdisc on each, and a u32
/// match-all filter on each that redirects every packet out of the other. What the guest sends into the tap leaves
/// through the link, and what arrives on the link goes to the guest, so the VM takes the link's place on the network.
/// The methods work in the calling thread's namespace; the <c>...Async</c> ones enter a namespace by path first.
/// </summary>
public static class TapRedirect
{
    /// <summary>
    /// Makes the tap (with <paramref name="link"/>'s MTU unless <paramref name="options"/> gives one) and the redirect
    /// both ways. A failure undoes what was made: the tap and the link's ingress qdisc.
    /// </summary>
    /// <exception cref="IOException">A step failed (for example EEXIST: the link already has an ingress qdisc).</exception>
    public static TapRedirection Create(Rtnetlink rtnetlink, Link link, TapOptions options)
    {
        ArgumentNullException.ThrowIfNull(rtnetlink);
        ArgumentNullException.ThrowIfNull(link);
        ArgumentNullException.ThrowIfNull(options);
        Link tap = TapDevice.Create(rtnetlink, options with { Mtu = options.Mtu ?? link.Mtu });
        bool linkQdisc = false;
        try
        {
            rtnetlink.AddIngressQdisc(tap);
            rtnetlink.AddIngressQdisc(link);
            linkQdisc = true;
            rtnetlink.AddRedirectFilter(tap, link);
            rtnetlink.AddRedirectFilter(link, tap);
            return new TapRedirection(rtnetlink.FindLink(link.Index) ?? link, tap);
        }
        catch
        {
            // Deleting the tap takes its qdisc and filter with it; the link's qdisc is ours only if we added it.
            Undo(() => rtnetlink.DeleteLink(tap));
            if (linkQdisc)
            {
                Undo(() => rtnetlink.DeleteIngressQdisc(link));
            }

            throw;
        }
    }

    /// <summary>
    /// Removes the redirect: the ingress qdisc (and so the filter) of the link named <paramref name="linkName"/>, and
    /// the tap named <paramref name="tapName"/> (its qdisc and filter go with it). Either may already be gone.
    /// </summary>
    /// <exception cref="IOException">Removing something that exists failed; the other removal was still tried.</exception>
    public static void Remove(Rtnetlink rtnetlink, string linkName, string? tapName)
    {
        ArgumentNullException.ThrowIfNull(rtnetlink);
        ArgumentException.ThrowIfNullOrEmpty(linkName);
        var failures = new List<Exception>();
        Try(failures, () =>
        {
            if (rtnetlink.FindLink(linkName) is { } link)
            {
                rtnetlink.DeleteIngressQdisc(link);
            }
        });
        if (tapName is not null)
        {
            Try(failures, () =>
            {
                if (rtnetlink.FindLink(tapName) is { } tap)
                {
                    rtnetlink.DeleteLink(tap);
                }
            });
        }

        if (failures.Count == 1)
        {
            throw failures[0];
        }

        if (failures.Count > 1)
        {
            throw new IOException($"remove tap redirect between {linkName} and {tapName}: {string.Join("; ", failures.Select(f => f.Message))}", failures[0]);
        }
    }

    /// <summary>What is missing from the redirect between <paramref name="linkName"/> and <paramref name="tapName"/>; empty when it is whole.</summary>
    public static IReadOnlyList<string> Check(Rtnetlink rtnetlink, string linkName, string tapName)
    {
        ArgumentNullException.ThrowIfNull(rtnetlink);
        var problems = new List<string>();
        Link? link = rtnetlink.FindLink(linkName);
        Link? tap = rtnetlink.FindLink(tapName);
        if (link is null)
        {
            problems.Add($"link {linkName} does not exist");
        }

        if (tap is null)
        {
            problems.Add($"tap {tapName} does not exist");
        }

        if (link is null || tap is null)
        {
            return problems;
        }

        foreach ((Link source, Link target) in new[] { (link, tap), (tap, link) })
        {
            if (!rtnetlink.ListQdiscs(source).Any(q => q.IsIngress))
            {
                problems.Add($"{source} has no ingress qdisc");
            }
            else if (!rtnetlink.HasRedirectFilter(source, target))
            {
                problems.Add($"{source} has no u32 filter redirecting to {target}");
            }
        }

        return problems;
    }

    /// <summary><see cref="Create"/> inside the network namespace at <paramref name="netnsPath"/>, for the link named <paramref name="linkName"/>.</summary>
    /// <exception cref="NetworkNamespaceNotFoundException">The namespace does not exist.</exception>
    public static Task<TapRedirection> CreateAsync(string netnsPath, string linkName, TapOptions options, CancellationToken cancellationToken = default) =>
        NetworkNamespace.RunAsync(netnsPath, () =>
        {
            using Rtnetlink rtnetlink = Rtnetlink.Open();
            return Create(rtnetlink, rtnetlink.GetLink(linkName), options);
        }, cancellationToken);

    /// <summary><see cref="Remove"/> inside the network namespace at <paramref name="netnsPath"/>; a namespace that is already gone took everything with it, so that is success.</summary>
    public static async Task RemoveAsync(string netnsPath, string linkName, string? tapName, CancellationToken cancellationToken = default)
    {
        try
        {
            await NetworkNamespace.RunAsync(netnsPath, () =>
            {
                using Rtnetlink rtnetlink = Rtnetlink.Open();
                Remove(rtnetlink, linkName, tapName);
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (NetworkNamespaceNotFoundException)
        {
        }
    }

    /// <summary><see cref="Check"/> inside the network namespace at <paramref name="netnsPath"/>.</summary>
    /// <exception cref="NetworkNamespaceNotFoundException">The namespace does not exist.</exception>
    public static Task<IReadOnlyList<string>> CheckAsync(string netnsPath, string linkName, string tapName, CancellationToken cancellationToken = default) =>
        NetworkNamespace.RunAsync(netnsPath, () =>
        {
            using Rtnetlink rtnetlink = Rtnetlink.Open();
            return Check(rtnetlink, linkName, tapName);
        }, cancellationToken);

    private static void Undo(Action step)
    {
        try
        {
            step();
        }
        catch (IOException)
        {
            // The failure that made us undo is the one to report.
        }
    }

    private static void Try(List<Exception> failures, Action step)
    {
        try
        {
            step();
        }
        catch (IOException e)
        {
            failures.Add(e);
        }
    }
}
