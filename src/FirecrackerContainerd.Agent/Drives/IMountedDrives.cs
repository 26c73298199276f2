namespace FirecrackerContainerd.Agent.Drives;

/// <summary>Where the drives the host had mounted are, for checking what a later request says about them.</summary>
internal interface IMountedDrives
{
    /// <summary>The directory drive <paramref name="driveId"/> is mounted at, as the host named it; null when it is not mounted.</summary>
    string? MountPointOf(string driveId);
}
