using System.Diagnostics;

namespace FirecrackerContainerd.IntegrationTests;

/// <summary>Waits for a condition that containerd brings about asynchronously, with a generous bound (not a timing assertion).</summary>
internal static class Eventually
{
    public static async Task<bool> HoldsAsync(Func<bool> condition, TimeSpan? within = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = within ?? TimeSpan.FromSeconds(20);
        while (!condition())
        {
            if (clock.Elapsed > limit)
            {
                return false;
            }

            await Task.Delay(50);
        }

        return true;
    }
}
