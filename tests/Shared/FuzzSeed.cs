using System.Security.Cryptography;
using Xunit.Abstractions;

namespace FirecrackerContainerd.TestSupport;

/// <summary>
/// The seed of a fuzz test. <c>FC_FUZZ_SEED=N</c> replays seed N, <c>FC_FUZZ_SEED=random</c> draws a fresh one;
/// otherwise the test's own default is used (a fixed seed, or a fresh one for tests that draw one every run). The
/// seed is written to the test's output, which `dotnet test` prints for a failed test, so any failure can be replayed.
/// </summary>
internal static class FuzzSeed
{
    public const string Variable = "FC_FUZZ_SEED";

    /// <summary>The seed to use; <paramref name="fixedDefault"/> null means a fresh seed unless one is given.</summary>
    public static int Choose(ITestOutputHelper output, int? fixedDefault)
    {
        ArgumentNullException.ThrowIfNull(output);
        string? given = Environment.GetEnvironmentVariable(Variable);
        int seed = given switch
        {
            null or "" => fixedDefault ?? RandomNumberGenerator.GetInt32(int.MaxValue),
            "random" => RandomNumberGenerator.GetInt32(int.MaxValue),
            _ when int.TryParse(given, out int replay) => replay,
            _ => throw new InvalidOperationException($"{Variable} must be an integer seed or \"random\", not \"{given}\""),
        };
        output.WriteLine($"fuzz seed {seed} (replay with {Variable}={seed})");
        return seed;
    }
}
