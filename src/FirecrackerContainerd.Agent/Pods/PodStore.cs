using System.Globalization;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Protos;
using FirecrackerContainerd.Protos.Agent;
using FirecrackerContainerd.Ttrpc;
using FirecrackerContainerd.Ttrpc.Server;
using Google.Protobuf.WellKnownTypes;

namespace FirecrackerContainerd.Agent.Pods;

/// <summary>
/// What the guest keeps for its pod, under <c>&lt;root&gt;/&lt;sandbox id&gt;</c>: <c>files/</c> (host files the shim copied
/// in), <c>shm/</c> (the pod's shared memory, a tmpfs of its own) and <c>volumes/</c> (emptyDir volumes, in guest
/// memory). Names come from the host and are checked before they touch a path.
/// </summary>
internal sealed class PodStore(string root, Action<string, string, ulong>? mountTmpfs = null, Action<string, string>? writeSysctl = null)
{
    /// <summary>Most network sysctls one pod sets.</summary>
    public const int MaxSysctls = 32;

    private const int MaxSysctlValueLength = 256;
    /// <summary>The largest file the host may put (the pod's /etc files are a few hundred bytes).</summary>
    public const int MaxFileBytes = 1024 * 1024;

    /// <summary>The pod's shared memory when the host names no size: containerd's default.</summary>
    public const ulong DefaultShmBytes = 64UL * 1024 * 1024;

    private const int MaxNameLength = 128;
    private readonly Action<string, string, ulong> _mountTmpfs = mountTmpfs ?? MountTmpfs;
    private readonly Action<string, string> _writeSysctl = writeSysctl ?? WriteSysctl;
    private readonly Lock _gate = new();

    public void Register(TtrpcServiceRegistry registry) => registry
        .AddUnary<PreparePodRequest, Empty>(ServiceNames.Pod, "PreparePod", PreparePodRequest.Parser, (r, _) => Task.FromResult(Prepare(r)))
        .AddUnary<PutPodFileRequest, Empty>(ServiceNames.Pod, "PutFile", PutPodFileRequest.Parser, (r, c) => PutFileAsync(r, c.CancellationToken))
        .AddUnary<EnsurePodVolumeRequest, Empty>(ServiceNames.Pod, "EnsureVolume", EnsurePodVolumeRequest.Parser, (r, _) => Task.FromResult(EnsureVolume(r)))
        .AddUnary<SetPodNetworkSysctlsRequest, Empty>(ServiceNames.Pod, "SetNetworkSysctls", SetPodNetworkSysctlsRequest.Parser, (r, _) => Task.FromResult(SetNetworkSysctls(r)));

    /// <summary>The guest directory of pod <paramref name="sandboxId"/>.</summary>
    public string PodDirectory(string sandboxId) => Path.Combine(root, sandboxId);

    public Empty Prepare(PreparePodRequest request)
    {
        string pod = PodDirectory(ValidSandbox(request.SandboxId));
        ulong shmBytes = request.ShmSizeBytes == 0 ? DefaultShmBytes : request.ShmSizeBytes;
        lock (_gate)
        {
            string shm = Path.Combine(pod, "shm");
            if (Directory.Exists(shm))
            {
                return new Empty();
            }

            Directory.CreateDirectory(Path.Combine(pod, "files"));
            Directory.CreateDirectory(Path.Combine(pod, "volumes"));
            Directory.CreateDirectory(shm);
            try
            {
                _mountTmpfs("shm", shm, shmBytes);
            }
            catch (IOException e)
            {
                Directory.Delete(shm);
                throw new TtrpcException(StatusCode.Internal, $"pod {request.SandboxId}: mounting its shared memory at {shm}: {e.Message}", e);
            }
        }

        AgentTrace.Write($"pod {request.SandboxId}: prepared at {pod}, shm {shmBytes} bytes");
        return new Empty();
    }

    public async Task<Empty> PutFileAsync(PutPodFileRequest request, CancellationToken cancellationToken)
    {
        string files = Path.Combine(PreparedPod(request.SandboxId), "files");
        string name = ValidName(request.Name, "file name");
        if (request.Content.Length > MaxFileBytes)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"pod {request.SandboxId}: file {name} has {request.Content.Length} bytes, more than {MaxFileBytes}");
        }

        if (request.Mode > 0x1FF)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"pod {request.SandboxId}: file {name}: mode 0{Convert.ToString(request.Mode, 8)} is not permission bits");
        }

        string target = Path.Combine(files, name);
        string temporary = Path.Combine(files, $".{name}.{Guid.NewGuid():N}");
        await File.WriteAllBytesAsync(temporary, request.Content.Memory, cancellationToken).ConfigureAwait(false);
        File.SetUnixFileMode(temporary, (UnixFileMode)(request.Mode == 0 ? 0x1A4 : request.Mode));
        File.Move(temporary, target, overwrite: true);
        AgentTrace.Write($"pod {request.SandboxId}: file {name}, {request.Content.Length} bytes");
        return new Empty();
    }

    public Empty EnsureVolume(EnsurePodVolumeRequest request)
    {
        string volumes = Path.Combine(PreparedPod(request.SandboxId), "volumes");
        string volume = Path.Combine(volumes, ValidName(request.Name, "volume name"));
        if (!Directory.Exists(volume))
        {
            // World-writable as an emptyDir on the node is: the pod's containers may run as any user.
            Directory.CreateDirectory(volume);
            File.SetUnixFileMode(volume, (UnixFileMode)0x1FF);
        }

        return new Empty();
    }

    /// <summary>
    /// Sets the pod's network sysctls: the guest's network namespace is the pod's (its containers join no other), so
    /// what the kubelet asked of the pod's namespace is asked of the guest's. Every name and value is checked before
    /// the first is written.
    /// </summary>
    public Empty SetNetworkSysctls(SetPodNetworkSysctlsRequest request)
    {
        _ = PreparedPod(request.SandboxId);
        if (request.Sysctls.Count > MaxSysctls)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"pod {request.SandboxId}: {request.Sysctls.Count} network sysctls, more than {MaxSysctls}");
        }

        foreach (var (name, value) in request.Sysctls)
        {
            bool validName = name.Length is > 4 and <= MaxNameLength && name.StartsWith("net.", StringComparison.Ordinal)
                && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-') && !name.Contains("..", StringComparison.Ordinal) && !name.EndsWith('.');
            if (!validName)
            {
                throw new TtrpcException(StatusCode.InvalidArgument, $"pod {request.SandboxId}: \"{UntrustedText.Shown(name, 64)}\" is not a network sysctl name (net.*)");
            }

            if (value.Length > MaxSysctlValueLength || value.Any(c => (c < ' ' && c != '\t') || c == 0x7F))
            {
                throw new TtrpcException(StatusCode.InvalidArgument, $"pod {request.SandboxId}: sysctl {name}: the value is not up to {MaxSysctlValueLength} printable characters");
            }
        }

        foreach (var (name, value) in request.Sysctls.OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            try
            {
                _writeSysctl(name, value);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new TtrpcException(StatusCode.InvalidArgument, $"pod {request.SandboxId}: sysctl {name}={UntrustedText.Shown(value, 64)}: {e.Message}", e);
            }

            AgentTrace.Write($"pod {request.SandboxId}: sysctl {name}={value}");
        }

        return new Empty();
    }

    private string PreparedPod(string sandboxId)
    {
        string pod = PodDirectory(ValidSandbox(sandboxId));
        return Directory.Exists(Path.Combine(pod, "shm"))
            ? pod
            : throw new TtrpcException(StatusCode.FailedPrecondition, $"pod {sandboxId} was not prepared in this VM");
    }

    private static string ValidSandbox(string sandboxId)
    {
        try
        {
            Identifiers.Validate(sandboxId);
            return sandboxId;
        }
        catch (InvalidIdentifierException e)
        {
            throw new TtrpcException(StatusCode.InvalidArgument, $"invalid sandbox id: {e.Message}");
        }
    }

    private static string ValidName(string name, string what)
    {
        // Identifier characters and at most 128 of them: a name can neither leave its directory nor hide.
        bool valid = name.Length is > 0 and <= MaxNameLength && char.IsAsciiLetterOrDigit(name[0])
            && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-') && !name.Contains("..", StringComparison.Ordinal);
        return valid ? name : throw new TtrpcException(StatusCode.InvalidArgument, $"invalid {what} \"{UntrustedText.Shown(name, 64)}\"");
    }

    private static void WriteSysctl(string name, string value) =>
        File.WriteAllText("/proc/sys/" + name.Replace('.', '/'), value);

    private static void MountTmpfs(string source, string target, ulong bytes)
    {
        const ulong msNosuid = 0x2;
        const ulong msNodev = 0x4;
        const ulong msNoexec = 0x8;
        Native.Interop.Mount(source, target, "tmpfs", msNosuid | msNodev | msNoexec,
            string.Create(CultureInfo.InvariantCulture, $"mode=1777,size={bytes}"));
    }
}
