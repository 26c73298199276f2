using System.Text;

namespace FirecrackerContainerd.Shim.Addressing;

/// <summary>Go's <c>path/filepath.Join</c> and <c>Clean</c> on Unix, so hashed socket names match containerd's exactly.</summary>
public static class GoFilePath
{
    /// <summary>Joins the non-empty elements with '/' and cleans the result; all empty gives "".</summary>
    public static string Join(params string[] elements)
    {
        ArgumentNullException.ThrowIfNull(elements);
        var parts = elements.Where(e => !string.IsNullOrEmpty(e)).ToArray();
        return parts.Length == 0 ? string.Empty : Clean(string.Join('/', parts));
    }

    /// <summary>Lexically cleans a path: single slashes, no "." elements, ".." resolved where possible, no trailing slash.</summary>
    public static string Clean(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path.Length == 0)
        {
            return ".";
        }

        bool rooted = path[0] == '/';
        var stack = new List<string>();
        foreach (string element in path.Split('/'))
        {
            if (element.Length == 0 || element == ".")
            {
                continue;
            }

            if (element == "..")
            {
                if (stack.Count > 0 && stack[^1] != "..")
                {
                    stack.RemoveAt(stack.Count - 1);
                }
                else if (!rooted)
                {
                    stack.Add("..");
                }

                continue;
            }

            stack.Add(element);
        }

        var result = new StringBuilder();
        if (rooted)
        {
            result.Append('/');
        }

        result.AppendJoin('/', stack);
        return result.Length == 0 ? "." : result.ToString();
    }
}
