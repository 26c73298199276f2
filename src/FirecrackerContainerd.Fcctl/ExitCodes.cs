namespace FirecrackerContainerd.Fcctl;

/// <summary>fcctl's exit codes, so that scripts can tell a missing VM from a failure.</summary>
public static class ExitCodes
{
    /// <summary>The call succeeded.</summary>
    public const int Ok = 0;

    /// <summary>The call failed (the daemon or the shim answered an error, or the daemon is unreachable).</summary>
    public const int Failed = 1;

    /// <summary>The command line is wrong (unknown command or option, missing argument, bad JSON, bad config file).</summary>
    public const int Usage = 2;

    /// <summary>The VM does not exist (status NotFound).</summary>
    public const int NotFound = 3;

    /// <summary>The VM exists already (status AlreadyExists).</summary>
    public const int AlreadyExists = 4;
}
