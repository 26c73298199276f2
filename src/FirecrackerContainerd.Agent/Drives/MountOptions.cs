using System.Text.RegularExpressions;
using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Agent.Drives;

/// <summary>
/// The options of a MountDrive request split the way mount(2) wants them: the generic ones ("ro", "noexec",
/// "noatime", ...) become mount flags, the rest are the file system's own data string. A file system such as
/// ext4 rejects a generic option it finds in its data, so they must not be passed through as text.
/// </summary>
/// <param name="Flags">The MS_* flags.</param>
/// <param name="Data">The file system specific options joined with commas, or null when there are none.</param>
internal sealed partial record MountOptions(ulong Flags, string? Data)
{
    /// <summary>More options than any real mount needs; the list comes from the host.</summary>
    public const int MaxOptions = 32;

    /// <summary>The longest single option accepted.</summary>
    public const int MaxOptionLength = 256;

    private const ulong MS_RDONLY = 1;
    private const ulong MS_NOSUID = 2;
    private const ulong MS_NODEV = 4;
    private const ulong MS_NOEXEC = 8;
    private const ulong MS_SYNCHRONOUS = 16;
    private const ulong MS_DIRSYNC = 128;
    private const ulong MS_NOATIME = 1024;
    private const ulong MS_NODIRATIME = 2048;
    private const ulong MS_RELATIME = 1 << 21;
    private const ulong MS_STRICTATIME = 1 << 24;
    private const ulong MS_LAZYTIME = 1 << 25;

    // Each generic option sets (true) or clears (false) its flag, as mount(8) reads them; the last one wins.
    private static readonly Dictionary<string, (bool Set, ulong Flag)> Generic = new(StringComparer.Ordinal)
    {
        ["ro"] = (true, MS_RDONLY),
        ["rw"] = (false, MS_RDONLY),
        ["nosuid"] = (true, MS_NOSUID),
        ["suid"] = (false, MS_NOSUID),
        ["nodev"] = (true, MS_NODEV),
        ["dev"] = (false, MS_NODEV),
        ["noexec"] = (true, MS_NOEXEC),
        ["exec"] = (false, MS_NOEXEC),
        ["sync"] = (true, MS_SYNCHRONOUS),
        ["async"] = (false, MS_SYNCHRONOUS),
        ["dirsync"] = (true, MS_DIRSYNC),
        ["noatime"] = (true, MS_NOATIME),
        ["atime"] = (false, MS_NOATIME),
        ["nodiratime"] = (true, MS_NODIRATIME),
        ["diratime"] = (false, MS_NODIRATIME),
        ["relatime"] = (true, MS_RELATIME),
        ["norelatime"] = (false, MS_RELATIME),
        ["strictatime"] = (true, MS_STRICTATIME),
        ["nostrictatime"] = (false, MS_STRICTATIME),
        ["lazytime"] = (true, MS_LAZYTIME),
        ["nolazytime"] = (false, MS_LAZYTIME),
    };

    /// <summary>Whether the mount is read-only.</summary>
    public bool IsReadOnly => (Flags & MS_RDONLY) != 0;

    /// <summary>Splits <paramref name="options"/>; throws <see cref="ArgumentException"/> naming the first bad one.</summary>
    public static MountOptions Parse(IReadOnlyCollection<string> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Count > MaxOptions)
        {
            throw new ArgumentException($"{options.Count} mount options are more than {MaxOptions}");
        }

        ulong flags = 0;
        var data = new List<string>();
        foreach (string option in options)
        {
            if (!OptionPattern().IsMatch(option) || option.Length > MaxOptionLength)
            {
                throw new ArgumentException(
                    $"mount option \"{Printable(option)}\" must be 1..{MaxOptionLength} printable characters without ',' or spaces");
            }

            if (Generic.TryGetValue(option, out var generic))
            {
                flags = generic.Set ? flags | generic.Flag : flags & ~generic.Flag;
            }
            else
            {
                data.Add(option);
            }
        }

        return new MountOptions(flags, data.Count == 0 ? null : string.Join(',', data));
    }

    // Printable ASCII except space and comma: a comma would smuggle a second option into the data string.
    [GeneratedRegex(@"^[\x21-\x2b\x2d-\x7e]+\z")]
    private static partial Regex OptionPattern();

    private static string Printable(string text) => UntrustedText.Shown(text, 64);
}
