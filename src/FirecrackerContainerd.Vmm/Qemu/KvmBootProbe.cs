using System.Collections.Immutable;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Machine;
using FirecrackerContainerd.Vmm.Selection;

namespace FirecrackerContainerd.Vmm.Qemu;

/// <summary>The accelerator a probe chose, and why.</summary>
/// <param name="Accelerator">KVM when a probe boot reached the guest's /init under it, else TCG.</param>
/// <param name="Reason">A sentence for logs and users.</param>
/// <param name="FromCache">Whether the verdict was read from the cache rather than measured now.</param>
internal sealed record AcceleratorVerdict(QemuAccelerator Accelerator, string Reason, bool FromCache);

/// <summary>
/// Decides between KVM and TCG by proof, not by the presence of /dev/kvm: some nested KVMs open fine
/// but cannot run a stock kernel. A probe boots the real kernel and initramfs under KVM, bounded in
/// time, and KVM is chosen only when the guest's /init reports in. The verdict is cached per host
/// kernel, QEMU version and guest kernel, because a failing probe costs its whole time bound.
/// </summary>
internal sealed class KvmBootProbe
{
    /// <summary>The line the probe's guest prints once its /init runs.</summary>
    internal const string Marker = "fc-kvm-probe-ok";

    private readonly string _cacheDir;
    private readonly string _qemuBinary;
    private readonly TimeSpan _bound;
    private readonly IKvmProbe _device;

    /// <summary>Creates a probe that caches verdicts in <paramref name="cacheDir"/>.</summary>
    /// <param name="cacheDir">Where verdicts are kept.</param>
    /// <param name="qemuBinary">The QEMU that boots the probe guest.</param>
    /// <param name="bound">How long a probe boot may take (30 s by default).</param>
    /// <param name="device">The cheap first check, which must pass before a boot is tried (<see cref="KvmDeviceProbe"/> by default).</param>
    public KvmBootProbe(string cacheDir, string qemuBinary = QemuOptions.DefaultQemuBinary, TimeSpan bound = default, IKvmProbe? device = null)
    {
        _cacheDir = cacheDir;
        _qemuBinary = qemuBinary;
        _bound = bound == default ? TimeSpan.FromSeconds(30) : bound;
        _device = device ?? new KvmDeviceProbe();
    }

    /// <summary>The verdict for booting <paramref name="kernel"/> with <paramref name="initrd"/> on this host.</summary>
    public async Task<AcceleratorVerdict> DecideAsync(string kernel, string initrd, CancellationToken cancellationToken)
    {
        // The device check is necessary, not sufficient: only a guest that boots proves KVM.
        KvmVerdict device = await _device.ProbeAsync(cancellationToken).ConfigureAwait(false);
        if (!device.Works)
        {
            return new AcceleratorVerdict(QemuAccelerator.Tcg, $"{device.Reason}: using TCG", FromCache: false);
        }

        string key = await CacheKeyAsync(kernel, cancellationToken).ConfigureAwait(false);
        string cacheFile = Path.Combine(_cacheDir, $"kvm-probe-{key}.json");
        if (TryReadCache(cacheFile) is { } cached)
        {
            return cached with { FromCache = true };
        }

        AcceleratorVerdict verdict = await ProbeAsync(kernel, initrd, cancellationToken).ConfigureAwait(false);
        Directory.CreateDirectory(_cacheDir);
        string temp = cacheFile + $".{Environment.ProcessId}.tmp";
        await File.WriteAllTextAsync(temp, new JsonObject
        {
            ["accelerator"] = verdict.Accelerator.ToString(),
            ["reason"] = verdict.Reason,
        }.ToJsonString(), cancellationToken).ConfigureAwait(false);
        File.Move(temp, cacheFile, overwrite: true);
        return verdict;
    }

    private async Task<AcceleratorVerdict> ProbeAsync(string kernel, string initrd, CancellationToken cancellationToken)
    {
        string dir = Directory.CreateTempSubdirectory("fc-kvm-probe-").FullName;
        try
        {
            string script = Convert.ToBase64String(Encoding.ASCII.GetBytes($"echo {Marker} > /dev/console\n"));
            var spec = new MachineSpec(
                "kvm-probe",
                new BootSource(kernel, initrd, $"reboot=k panic=-1 fc.init64={script}"),
                new MachineConfig(1, 256),
                ImmutableArray<Drive>.Empty);
            var console = new ConsoleCapture(Marker);
            var options = new QemuOptions(_qemuBinary, Accelerator: QemuAccelerator.Kvm, StartTimeout: _bound);
            await using var machine = new QemuMachine(spec, new VmDir(dir), options, console);
            var watch = Stopwatch.StartNew();
            try
            {
                await machine.StartAsync(cancellationToken).ConfigureAwait(false);
                Task finished = await Task.WhenAny(console.Seen, machine.Exited, Task.Delay(_bound, cancellationToken)).ConfigureAwait(false);
                if (finished == console.Seen)
                {
                    return new AcceleratorVerdict(QemuAccelerator.Kvm, $"a KVM probe boot reached /init in {watch.Elapsed.TotalSeconds:0.0} s", false);
                }

                return finished == machine.Exited
                    ? new AcceleratorVerdict(QemuAccelerator.Tcg, $"under KVM QEMU exited with status {(await machine.Exited.ConfigureAwait(false)).ExitCode} before /init: using TCG", false)
                    : new AcceleratorVerdict(QemuAccelerator.Tcg, $"under KVM the guest did not reach /init within {_bound.TotalSeconds:0} s: using TCG", false);
            }
            catch (Exception e) when (e is IOException or TimeoutException or QmpException)
            {
                return new AcceleratorVerdict(QemuAccelerator.Tcg, $"QEMU could not start under KVM ({e.Message}): using TCG", false);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private async Task<string> CacheKeyAsync(string kernel, CancellationToken cancellationToken)
    {
        string hostKernel = (await File.ReadAllTextAsync("/proc/sys/kernel/osrelease", cancellationToken).ConfigureAwait(false)).Trim();
        var qemuInfo = new FileInfo(ExecutableLookup.Find(_qemuBinary)
            ?? throw new FileNotFoundException($"{_qemuBinary} is not an executable on PATH (Debian package qemu-system-x86)", _qemuBinary));
        byte[] guestKernel;
        await using (FileStream file = File.OpenRead(kernel))
        {
            guestKernel = await SHA256.HashDataAsync(file, cancellationToken).ConfigureAwait(false);
        }

        string material = $"{hostKernel}\n{qemuInfo.FullName}\n{qemuInfo.Length}\n{qemuInfo.LastWriteTimeUtc:O}\n{Convert.ToHexString(guestKernel)}";
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(material)))[..16].ToLowerInvariant();
    }

    private static AcceleratorVerdict? TryReadCache(string path)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(path));
            string? accelerator = doc.RootElement.GetProperty("accelerator").GetString();
            string reason = doc.RootElement.GetProperty("reason").GetString() ?? string.Empty;
            return Enum.TryParse(accelerator, out QemuAccelerator parsed) ? new AcceleratorVerdict(parsed, reason, true) : null;
        }
        catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>A logger that watches the VMM's console output for one line.</summary>
    private sealed class ConsoleCapture(string marker) : Microsoft.Extensions.Logging.ILogger
    {
        private readonly TaskCompletionSource _seen = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Seen => _seen.Task;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            ArgumentNullException.ThrowIfNull(formatter);
            if (formatter(state, exception).Contains(marker, StringComparison.Ordinal))
            {
                _seen.TrySetResult();
            }
        }
    }
}
