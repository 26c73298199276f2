using System.Globalization;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Agent;

/// <summary>The agent's command line.</summary>
internal sealed record AgentOptions(
    uint VsockPort,
    string? UnixPath,
    string? StdioDirectory,
    string Runtime,
    string BundleRoot,
    string StateRoot,
    bool Trace = false,
    string MetadataDirectory = WellKnownNames.GuestMetadataDirectory)
{
    public static AgentOptions Parse(string[] args)
    {
        var options = new AgentOptions(WellKnownNames.AgentVsockPort, null, null, "crun", WellKnownNames.VmBundleRoot, Path.Combine(WellKnownNames.GuestAgentStateDirectory, "runtime"));
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            options = args[i] switch
            {
                "--vsock-port" => options with
                {
                    VsockPort = uint.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out uint port)
                        ? port
                        : throw new ArgumentException("--vsock-port needs a number"),
                },
                "--unix" => options with { UnixPath = Value() },
                "--stdio-dir" => options with { StdioDirectory = Value() },
                "--runtime" => options with { Runtime = Value() },
                "--bundle-root" => options with { BundleRoot = Value() },
                "--state-root" => options with { StateRoot = Value() },
                "--trace" => options with { Trace = true },
                "--metadata-dir" => options with { MetadataDirectory = Value() },
                _ => throw new ArgumentException($"unknown argument \"{args[i]}\""),
            };
        }

        return options;
    }
}
