namespace FirecrackerContainerd.Core;

/// <summary>Text that came from a request, a peer or a guest, made safe to quote in an error message or a log line.</summary>
public static class UntrustedText
{
    /// <summary>
    /// <paramref name="text"/> cut to <paramref name="maxLength"/> characters (then "..."), with control characters shown
    /// as '?': messages end up on terminals, and an escape sequence in them would be obeyed.
    /// </summary>
    public static string Shown(string text, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfNegative(maxLength);
        string cut = text.Length > maxLength ? text[..maxLength] + "..." : text;
        return cut.Any(char.IsControl) ? new string([.. cut.Select(c => char.IsControl(c) ? '?' : c)]) : cut;
    }
}
