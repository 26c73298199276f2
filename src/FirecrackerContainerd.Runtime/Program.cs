using System.Reflection;
using FirecrackerContainerd.Runtime;
using FirecrackerContainerd.Shim.Lifecycle;

string version = typeof(FirecrackerShimRuntime).Assembly
    .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
return await ShimProgram.RunAsync(args, new FirecrackerShimRuntime(), version);
