namespace FirecrackerContainerd.Shim.Arguments;

/// <summary>What containerd (or the shim itself) asked this process to do.</summary>
public enum ShimVerb
{
    /// <summary>No verb: run as the long-lived daemon serving the Task API.</summary>
    Serve,

    /// <summary><c>start</c>: make sure a daemon serves this task and print its address.</summary>
    Start,

    /// <summary><c>delete</c>: clean up after a task whose shim is gone and print a DeleteResponse.</summary>
    Delete,

    /// <summary><c>-v</c>: print the version.</summary>
    Version,
}
