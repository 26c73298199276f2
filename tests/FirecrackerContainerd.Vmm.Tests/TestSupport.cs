using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Text.Json;
using FirecrackerContainerd.Core;
using FirecrackerContainerd.Vmm.Firecracker;
using FirecrackerContainerd.Vmm.Machine;
using Microsoft.Extensions.Logging;

namespace FirecrackerContainerd.Vmm.Tests;

/// <summary>An <see cref="ILogger"/> that keeps what it is given, for assertions.</summary>
public sealed class ListLogger : ILogger
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _entries = new();

    /// <summary>Everything logged so far.</summary>
    public IReadOnlyList<(LogLevel Level, string Message)> Entries => [.. _entries];

    /// <inheritdoc/>
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    /// <inheritdoc/>
    public bool IsEnabled(LogLevel logLevel) => true;

    /// <inheritdoc/>
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _entries.Enqueue((logLevel, formatter(state, exception)));
}

/// <summary>Machine specs with real files behind them.</summary>
internal static class TestSpecs
{
    /// <summary>A spec using every device: root drive, two stub drives, a NIC with MMDS, vsock, balloon.</summary>
    public static MachineSpec Full(TempDir dir, string vmId = "vm1") => new(
        vmId,
        new BootSource(dir.File("vmlinux"), dir.File("initrd.img"), "console=ttyS0 reboot=k panic=1"),
        new MachineConfig(2, 256, Smt: false),
        [
            new Drive("root", dir.File("rootfs.ext4"), IsRoot: true, IsReadOnly: true),
            new Drive("stub0", dir.File("stub0"), CacheType: DriveCacheType.Writeback,
                RateLimiter: new RateLimiter(new TokenBucket(1 << 20, 100, 0), null)),
            new Drive("stub1", dir.File("stub1")),
        ],
        new VsockDevice(3, "firecracker.vsock"),
        [new NetworkInterface("eth0", "tap0", "02:fc:00:00:00:05", AllowMmds: true)],
        new BalloonDevice(64, DeflateOnOom: true, StatsPollingIntervalSeconds: 1),
        new MmdsConfig(MmdsVersion.V2, "169.254.169.254", JsonDocument.Parse("""{"latest":{"meta-data":{"vm-id":"vm1"}}}""").RootElement));

    /// <summary>A spec with only a kernel and an initrd.</summary>
    public static MachineSpec Minimal(TempDir dir, string vmId = "vm1") => new(
        vmId, new BootSource(dir.File("vmlinux"), dir.File("initrd.img")), new MachineConfig(1, 128), ImmutableArray<Drive>.Empty);
}

/// <summary>Writes a shell script that runs this test assembly as a fake <c>firecracker</c>.</summary>
internal static class FakeFirecrackerBinary
{
    /// <summary>Creates the script in <paramref name="dir"/>; requests are appended to <paramref name="recordPath"/>.</summary>
    public static string Write(TempDir dir, string recordPath, bool stubborn = false)
    {
        var dotnet = ExecutableLookup.Find("dotnet") ?? throw new InvalidOperationException("dotnet is not on PATH");
        var assembly = typeof(FakeFirecracker.Program).Assembly.Location;
        var path = dir.Combine(stubborn ? "firecracker-stubborn" : "firecracker");
        System.IO.File.WriteAllText(path,
            $"#!/bin/sh\nexec '{dotnet}' exec '{assembly}' {FakeFirecracker.Program.Verb} --record '{recordPath}'{(stubborn ? " --stubborn" : "")} \"$@\"\n");
        System.IO.File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    /// <summary>Reads the body the fake recorded for the first <paramref name="method"/> on <paramref name="path"/>.</summary>
    public static JsonElement Body(string recordPath, string method, string path)
    {
        foreach (var line in System.IO.File.ReadAllLines(recordPath))
        {
            var r = JsonDocument.Parse(line).RootElement;
            if (r.GetProperty("Method").GetString() == method && r.GetProperty("Path").GetString() == path)
            {
                return JsonDocument.Parse(r.GetProperty("Body").GetString()!).RootElement;
            }
        }

        throw new InvalidOperationException($"no {method} {path} in {recordPath}");
    }

    /// <summary>Reads the requests the fake recorded, as "METHOD /path status" lines, and every violation.</summary>
    public static (IReadOnlyList<string> Requests, IReadOnlyList<string> Violations) ReadRecord(string recordPath)
    {
        var requests = new List<string>();
        var violations = new List<string>();
        if (!System.IO.File.Exists(recordPath))
        {
            return (requests, violations);
        }

        foreach (var line in System.IO.File.ReadAllLines(recordPath))
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            requests.Add($"{r.GetProperty("Method").GetString()} {r.GetProperty("Path").GetString()} {r.GetProperty("Status").GetInt32()}");
            violations.AddRange(r.GetProperty("Violations").EnumerateArray().Select(v => v.GetString()!));
        }

        return (requests, violations);
    }
}
