using System.Buffers;
using System.Globalization;
using System.Text;

namespace FirecrackerContainerd.Core;

/// <summary>Go's text conventions that error messages shared with containerd depend on.</summary>
internal static class GoText
{
    /// <summary>strconv.Quote: a double-quoted literal with Go escapes for anything not printable.</summary>
    internal static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        for (int i = 0; i < s.Length;)
        {
            if (Rune.DecodeFromUtf16(s.AsSpan(i), out Rune rune, out int used) != OperationStatus.Done)
            {
                rune = Rune.ReplacementChar;
                used = 1;
            }

            i += used;
            AppendEscaped(sb, rune);
        }

        return sb.Append('"').ToString();
    }

    private static void AppendEscaped(StringBuilder sb, Rune rune)
    {
        switch (rune.Value)
        {
            case '"': sb.Append("\\\""); return;
            case '\\': sb.Append("\\\\"); return;
            case '\a': sb.Append("\\a"); return;
            case '\b': sb.Append("\\b"); return;
            case '\f': sb.Append("\\f"); return;
            case '\n': sb.Append("\\n"); return;
            case '\r': sb.Append("\\r"); return;
            case '\t': sb.Append("\\t"); return;
            case '\v': sb.Append("\\v"); return;
        }

        if (IsPrint(rune))
        {
            sb.Append(rune.ToString());
        }
        else if (rune.Value < 0x80)
        {
            sb.Append(CultureInfo.InvariantCulture, $"\\x{rune.Value:x2}");
        }
        else if (rune.Value < 0x10000)
        {
            sb.Append(CultureInfo.InvariantCulture, $"\\u{rune.Value:x4}");
        }
        else
        {
            sb.Append(CultureInfo.InvariantCulture, $"\\U{rune.Value:x8}");
        }
    }

    // unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
    private static bool IsPrint(Rune rune)
    {
        if (rune.Value == ' ')
        {
            return true;
        }

        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
                or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
                or UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator
                or UnicodeCategory.ParagraphSeparator => false,
            _ => true,
        };
    }
}

/// <summary>Go's path/filepath lexical rules (Join cleans its result), which upstream paths follow.</summary>
public static class GoPath
{
    /// <summary>filepath.Join: joins the non-empty elements with '/' and cleans the result.</summary>
    public static string Join(params string[] elements)
    {
        ArgumentNullException.ThrowIfNull(elements);
        string joined = string.Join('/', elements.Where(e => e.Length > 0));
        return joined.Length == 0 ? string.Empty : Clean(joined);
    }

    /// <summary>filepath.Clean: the shortest lexically equivalent path.</summary>
    public static string Clean(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path.Length == 0)
        {
            return ".";
        }

        bool rooted = path[0] == '/';
        var parts = new List<string>();
        foreach (string part in path.Split('/'))
        {
            if (part.Length == 0 || part == ".")
            {
                continue;
            }

            if (part == "..")
            {
                if (parts.Count > 0 && parts[^1] != "..")
                {
                    parts.RemoveAt(parts.Count - 1);
                }
                else if (!rooted)
                {
                    parts.Add(part);
                }

                continue;
            }

            parts.Add(part);
        }

        string body = string.Join('/', parts);
        return rooted ? "/" + body : body.Length == 0 ? "." : body;
    }
}
