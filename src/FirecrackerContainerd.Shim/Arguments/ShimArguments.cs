namespace FirecrackerContainerd.Shim.Arguments;

/// <summary>
/// The command line containerd gives a shim:
/// <c>-namespace ns -address a -publish-binary b -id id [-debug] [-bundle dir] start|delete</c>.
/// Parsed with Go's <c>flag</c> rules: flags first, <c>-x v</c>, <c>-x=v</c> or <c>--x</c>, parsing stops at the first non-flag word.
/// </summary>
/// <param name="Namespace">containerd namespace of the task.</param>
/// <param name="Address">containerd's gRPC socket path.</param>
/// <param name="PublishBinary">containerd's executable (the legacy event route; unused).</param>
/// <param name="Id">Task (container) id.</param>
/// <param name="Bundle">Bundle directory (given to <c>delete</c>); empty means the working directory.</param>
/// <param name="Socket">The socket address a daemon serves on (set when <c>start</c> spawns the daemon).</param>
/// <param name="Debug">containerd runs at debug level.</param>
/// <param name="Verb">What to do.</param>
public sealed record ShimArguments(
    string Namespace,
    string Address,
    string PublishBinary,
    string Id,
    string Bundle,
    string Socket,
    bool Debug,
    ShimVerb Verb)
{
    private static readonly HashSet<string> StringFlags = new(StringComparer.Ordinal)
    {
        "namespace", "address", "publish-binary", "id", "bundle", "socket",
    };

    private static readonly HashSet<string> BoolFlags = new(StringComparer.Ordinal) { "debug", "v" };

    /// <summary>Parses <paramref name="args"/>.</summary>
    /// <exception cref="ShimUsageException">An unknown flag, a missing value or an unknown verb.</exception>
    public static ShimArguments Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        bool debug = false;
        bool version = false;
        int i = 0;
        for (; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg.Length < 2 || arg[0] != '-')
            {
                break;
            }

            if (arg == "--")
            {
                i++;
                break;
            }

            string name = arg[1] == '-' ? arg[2..] : arg[1..];
            if (name.Length == 0 || name[0] is '-' or '=')
            {
                throw new ShimUsageException($"bad flag syntax: {arg}");
            }

            string? inlineValue = null;
            int eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                inlineValue = name[(eq + 1)..];
                name = name[..eq];
            }

            if (BoolFlags.Contains(name))
            {
                bool set = inlineValue is null || ParseBool(name, inlineValue);
                if (name == "debug")
                {
                    debug = set;
                }
                else
                {
                    version = set;
                }
            }
            else if (StringFlags.Contains(name))
            {
                if (inlineValue is null)
                {
                    if (i + 1 >= args.Count)
                    {
                        throw new ShimUsageException($"flag needs an argument: -{name}");
                    }

                    inlineValue = args[++i];
                }

                values[name] = inlineValue;
            }
            else
            {
                throw new ShimUsageException($"flag provided but not defined: -{name}");
            }
        }

        var verb = version ? ShimVerb.Version : ShimVerb.Serve;
        if (!version && i < args.Count)
        {
            verb = args[i] switch
            {
                "start" => ShimVerb.Start,
                "delete" => ShimVerb.Delete,
                _ => throw new ShimUsageException($"unknown verb {args[i]}: expected start or delete"),
            };
        }

        return new ShimArguments(
            values.GetValueOrDefault("namespace", string.Empty),
            values.GetValueOrDefault("address", string.Empty),
            values.GetValueOrDefault("publish-binary", string.Empty),
            values.GetValueOrDefault("id", string.Empty),
            values.GetValueOrDefault("bundle", string.Empty),
            values.GetValueOrDefault("socket", string.Empty),
            debug,
            verb);
    }

    /// <summary>The flags to give the daemon that <c>start</c> spawns: the same flags, no verb, plus the socket.</summary>
    public IReadOnlyList<string> DaemonArguments(string socketAddress)
    {
        var args = new List<string>
        {
            "-namespace", Namespace, "-address", Address, "-publish-binary", PublishBinary, "-id", Id,
        };
        if (Bundle.Length > 0)
        {
            args.Add("-bundle");
            args.Add(Bundle);
        }

        if (Debug)
        {
            args.Add("-debug");
        }

        args.Add("-socket");
        args.Add(socketAddress);
        return args;
    }

    private static bool ParseBool(string name, string value) => value switch
    {
        "1" or "t" or "T" or "true" or "TRUE" or "True" => true,
        "0" or "f" or "F" or "false" or "FALSE" or "False" => false,
        _ => throw new ShimUsageException($"invalid boolean value \"{value}\" for -{name}"),
    };
}

/// <summary>The shim was invoked with a command line it does not understand.</summary>
public sealed class ShimUsageException : Exception
{
    /// <summary>Creates the exception with a message naming the bad argument.</summary>
    public ShimUsageException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public ShimUsageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a default message.</summary>
    public ShimUsageException()
        : base("bad shim command line")
    {
    }
}
