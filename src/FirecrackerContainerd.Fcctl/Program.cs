using FirecrackerContainerd.Fcctl;

return await FcctlProgram.RunAsync(args, Console.Out, Console.Error, CancellationToken.None).ConfigureAwait(false);
