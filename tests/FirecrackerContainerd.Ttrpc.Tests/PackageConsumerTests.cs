using System.Diagnostics;
using System.IO.Compression;
using FirecrackerContainerd.TestSupport;

namespace FirecrackerContainerd.Ttrpc.Tests;

/// <summary>
/// The Ttrpc library as others get it: packed by scripts/pack, then used by a project outside this repository that
/// knows it only as a NuGet package, restored offline from the packed folder and the local package cache.
/// </summary>
[Trait("Category", "Packaging")]
public sealed class PackageConsumerTests : IDisposable
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(5);
    private readonly string _dir = Directory.CreateTempSubdirectory("fc-consumer-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_project_outside_the_repository_builds_against_the_packed_package_and_calls_through_it()
    {
        string packages = Path.Combine(_dir, "packages");
        (int packed, string packOutput) = await RunAsync(Path.Combine(RepoRoot(), "scripts", "pack"), ["--no-build", packages, "Ttrpc"], RepoRoot());
        Assert.True(packed == 0, packOutput);
        string package = Assert.Single(Directory.GetFiles(packages, "FirecrackerContainerd.Ttrpc.*.nupkg"));
        string version = Path.GetFileNameWithoutExtension(package)["FirecrackerContainerd.Ttrpc.".Length..];
        using (ZipArchive zip = ZipFile.OpenRead(package))
        {
            string[] entries = [.. zip.Entries.Select(e => e.FullName)];
            Assert.Contains("README.md", entries);
            Assert.Contains("lib/net10.0/FirecrackerContainerd.Ttrpc.dll", entries);
            Assert.Contains("lib/net10.0/FirecrackerContainerd.Ttrpc.xml", entries);
        }

        string consumer = Directory.CreateDirectory(Path.Combine(_dir, "consumer")).FullName;
        string globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        await File.WriteAllTextAsync(Path.Combine(consumer, "nuget.config"), $"""
            <configuration>
              <packageSources>
                <clear />
                <add key="packed" value="{packages}" />
                <add key="local-cache" value="{globalPackages}" />
              </packageSources>
            </configuration>
            """);
        await File.WriteAllTextAsync(Path.Combine(consumer, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <RestorePackagesPath>{Path.Combine(_dir, "restored")}</RestorePackagesPath>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="FirecrackerContainerd.Ttrpc" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        await File.WriteAllTextAsync(Path.Combine(consumer, "Program.cs"), """
            using FirecrackerContainerd.Ttrpc;
            using FirecrackerContainerd.Ttrpc.Client;
            using FirecrackerContainerd.Ttrpc.Server;
            using FirecrackerContainerd.Ttrpc.Transport;
            using Google.Protobuf.WellKnownTypes;

            [assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

            string socket = Path.Combine(args[0], "echo.sock");
            var services = new TtrpcServiceRegistry()
                .AddUnary("example.Echo", "Say", StringValue.Parser,
                    (request, call) => Task.FromResult(new StringValue { Value = "you said " + request.Value }))
                .AddUnary<StringValue, StringValue>("example.Echo", "Fail", StringValue.Parser,
                    (request, call) => throw new TtrpcException(StatusCode.NotFound, "no " + request.Value));
            await using var server = new TtrpcServer(services);
            using var listener = UnixSocketTransport.Listen(socket);
            _ = server.ServeAsync(listener);
            await using var client = await TtrpcClient.ConnectUnixAsync(socket, CancellationToken.None);
            StringValue answer = await client.CallAsync("example.Echo", "Say", new StringValue { Value = "hello" }, StringValue.Parser);
            Console.WriteLine(answer.Value);
            try
            {
                await client.CallAsync("example.Echo", "Fail", new StringValue { Value = "such thing" }, StringValue.Parser);
            }
            catch (TtrpcException e)
            {
                Console.WriteLine($"{e.StatusCode}: {e.Message}");
            }
            """);

        (int built, string buildOutput) = await RunAsync("dotnet", ["build", "-c", "Release", "-nologo", "-v:q", "-p:TreatWarningsAsErrors=true"], consumer);
        Assert.True(built == 0, buildOutput);
        Assert.True(File.Exists(Path.Combine(_dir, "restored", "firecrackercontainerd.ttrpc", version, $"firecrackercontainerd.ttrpc.{version}.nupkg")),
            "the consumer did not restore the packed package");
        (int ran, string output) = await RunAsync("dotnet", ["run", "-c", "Release", "--no-build", "--", _dir], consumer);

        Assert.True(ran == 0, output);
        Assert.Equal(["you said hello", "NotFound: no such thing"], output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] args, string workingDirectory)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        using Process process = Process.Start(info)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(StepTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {StepTimeout}");
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    private static string RepoRoot() => GuestImage.RepoRoot();
}
