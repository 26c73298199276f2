using FirecrackerContainerd.Fcctl;

return await FcctlProgram.RunAsync(args, Console.Out, Console.Error, CancellationToken.None, stderrIsTerminal: !Console.IsErrorRedirected).ConfigureAwait(false);
