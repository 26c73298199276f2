using System.Collections.Immutable;
using FirecrackerContainerd.Network;
using FirecrackerContainerd.Network.Cni;
using FirecrackerContainerd.Network.Links;
using FirecrackerContainerd.Network.Namespaces;
using FirecrackerContainerd.Network.Tap;

namespace FirecrackerContainerd.TcRedirectTap;

/// <summary>
/// What tc-redirect-tap does for each command, as upstream (awslabs/tc-redirect-tap) does it. ADD makes a tap in the
/// container's namespace with the veth's MTU, redirects both ways, and appends to the previous result the tap
/// (<c>sandbox</c> = the namespace path) and a pseudo-interface for the VM (same name as the tap, <c>sandbox</c> =
/// the container id, the veth's MAC) that carries copies of the veth's IPs. DEL removes the veth's ingress qdisc
/// and the tap; a namespace that is gone took both with it. CHECK verifies the qdiscs and filters.
/// </summary>
internal static class TcRedirectTapPlugin
{
    /// <summary>Runs the invocation and returns what to print on stdout (the result for ADD, nothing otherwise).</summary>
    /// <exception cref="PluginFailure">The command failed; the error names the step and the device.</exception>
    public static async Task<string> RunAsync(PluginInvocation invocation, CancellationToken cancellationToken)
    {
        return invocation.Command switch
        {
            "ADD" => await AddAsync(invocation, cancellationToken).ConfigureAwait(false),
            "DEL" => await DeleteAsync(invocation, cancellationToken).ConfigureAwait(false),
            "CHECK" => await CheckAsync(invocation, cancellationToken).ConfigureAwait(false),
            _ => throw new PluginFailure(CniErrorCodes.InvalidEnvironmentVariables, $"unknown CNI_COMMAND: {invocation.Command}"),
        };
    }

    /// <summary>The previous result with the tap and the VM's pseudo-interface appended, and the veth's IPs copied onto the latter.</summary>
    public static CniResult AppendTap(CniResult previous, PluginInvocation invocation, Link link, Link tap)
    {
        ArgumentNullException.ThrowIfNull(previous);
        ArgumentNullException.ThrowIfNull(invocation);
        ArgumentNullException.ThrowIfNull(link);
        ArgumentNullException.ThrowIfNull(tap);
        ImmutableArray<CniIpConfig> linkIps = previous.IpsOf(link.Name, invocation.NetnsPath).ToImmutableArray();
        ImmutableArray<CniInterface> interfaces = previous.Interfaces
            .Add(new CniInterface(tap.Name, tap.Mac, invocation.NetnsPath))
            .Add(new CniInterface(tap.Name, link.Mac, invocation.ContainerId));
        int vmIndex = interfaces.Length - 1;
        return previous with
        {
            CniVersion = invocation.CniVersion,
            Interfaces = interfaces,
            Ips = previous.Ips.AddRange(linkIps.Select(ip => ip with { Interface = vmIndex })),
        };
    }

    /// <summary>The VM's pseudo-interface and its tap in <paramref name="result"/> (<see cref="CniResult.FindVmTapPair"/>); null when either is absent.</summary>
    /// <exception cref="PluginFailure">More than one interface claims to be the VM's, or the tap.</exception>
    public static (CniInterface Vm, CniInterface Tap)? FindVmTapPair(CniResult result, string containerId)
    {
        ArgumentNullException.ThrowIfNull(result);
        try
        {
            return result.FindVmTapPair(containerId);
        }
        catch (CniFormatException e)
        {
            throw new PluginFailure(CniErrorCodes.InvalidNetworkConfig, e.Message);
        }
    }

    private static async Task<string> AddAsync(PluginInvocation invocation, CancellationToken cancellationToken)
    {
        CniResult previous = invocation.PreviousResult ?? throw NoPreviousResult();
        var options = new TapOptions(invocation.Tap.Name, OwnerUid: invocation.Tap.Uid ?? Interop.EffectiveUid, OwnerGid: invocation.Tap.Gid ?? Interop.EffectiveGid);
        CniResult result = await InExistingNamespaceAsync(invocation, rtnetlink =>
        {
            Link link = rtnetlink.FindLink(invocation.IfName)
                ?? throw new PluginFailure(CniErrorCodes.Internal, $"failed to find redirect interface \"{invocation.IfName}\" in {invocation.NetnsPath}");
            TapRedirection made = TapRedirect.Create(rtnetlink, link, options);
            return AppendTap(previous, invocation, made.Link, made.Tap);
        }, cancellationToken).ConfigureAwait(false);
        return CniResultJson.Write(result, invocation.CniVersion);
    }

    private static async Task<string> DeleteAsync(PluginInvocation invocation, CancellationToken cancellationToken)
    {
        if (invocation.NetnsPath.Length == 0)
        {
            return string.Empty;
        }

        string? tapName = invocation.PreviousResult is { } previous ? FindVmTapPair(previous, invocation.ContainerId)?.Tap.Name : null;
        try
        {
            await InNamespaceAsync(invocation, rtnetlink =>
            {
                TapRedirect.Remove(rtnetlink, invocation.IfName, tapName);
                return true;
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (NetworkNamespaceNotFoundException)
        {
            // Everything this plugin makes lives in the namespace; it is gone, so is all of it.
        }

        return string.Empty;
    }

    private static async Task<string> CheckAsync(PluginInvocation invocation, CancellationToken cancellationToken)
    {
        CniResult previous = invocation.PreviousResult ?? throw NoPreviousResult();
        (CniInterface _, CniInterface tap) = FindVmTapPair(previous, invocation.ContainerId)
            ?? throw new PluginFailure(CniErrorCodes.Internal, $"prevResult has no tap and pseudo-interface for sandbox \"{invocation.ContainerId}\"");
        IReadOnlyList<string> problems = await InExistingNamespaceAsync(invocation, rtnetlink => TapRedirect.Check(rtnetlink, invocation.IfName, tap.Name), cancellationToken).ConfigureAwait(false);
        if (problems.Count > 0)
        {
            throw new PluginFailure(CniErrorCodes.Internal, $"tap redirect between {invocation.IfName} and {tap.Name} in {invocation.NetnsPath} is broken", string.Join("; ", problems));
        }

        return string.Empty;
    }

    private static async Task<T> InNamespaceAsync<T>(PluginInvocation invocation, Func<Rtnetlink, T> work, CancellationToken cancellationToken)
    {
        try
        {
            return await NetworkNamespace.RunAsync(invocation.NetnsPath, () =>
            {
                using Rtnetlink rtnetlink = Rtnetlink.Open();
                return work(rtnetlink);
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e) when (e is not NetworkNamespaceNotFoundException)
        {
            throw new PluginFailure(CniErrorCodes.Internal, $"tc-redirect-tap {invocation.Command} in {invocation.NetnsPath}: {e.Message}");
        }
    }

    private static async Task<T> InExistingNamespaceAsync<T>(PluginInvocation invocation, Func<Rtnetlink, T> work, CancellationToken cancellationToken)
    {
        try
        {
            return await InNamespaceAsync(invocation, work, cancellationToken).ConfigureAwait(false);
        }
        catch (NetworkNamespaceNotFoundException)
        {
            throw new PluginFailure(CniErrorCodes.InvalidEnvironmentVariables, $"CNI_NETNS: network namespace {invocation.NetnsPath} does not exist");
        }
    }

    private static PluginFailure NoPreviousResult() =>
        new(CniErrorCodes.InvalidNetworkConfig, "no previous result was found, was this plugin chained with a previous one?");
}
