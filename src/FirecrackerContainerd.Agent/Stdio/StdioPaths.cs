namespace FirecrackerContainerd.Agent.Stdio;

/// <summary>
/// The paths a process's stdio take to the host: the port the host connects to for each stream (0 when the host
/// does not want that stream), and whether the streams are one terminal, which merges stderr into stdout.
/// </summary>
/// <param name="Terminal">Whether the process gets a terminal instead of pipes.</param>
/// <param name="StdinPort">The port whose connection feeds the process's stdin.</param>
/// <param name="StdoutPort">The port whose connection gets the process's stdout (with a terminal, all its output).</param>
/// <param name="StderrPort">The port whose connection gets the process's stderr; always 0 with a terminal.</param>
internal readonly record struct StdioPaths(bool Terminal, uint StdinPort, uint StdoutPort, uint StderrPort);
