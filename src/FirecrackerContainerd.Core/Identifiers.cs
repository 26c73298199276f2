using System.Text;

namespace FirecrackerContainerd.Core;

/// <summary>
/// containerd's identifier rules: ASCII letters and digits in runs joined by single '.', '_' or '-',
/// at most 76 bytes. An identifier that passes is a safe single path component.
/// </summary>
public static class Identifiers
{
    /// <summary>The longest identifier containerd accepts, in bytes.</summary>
    public const int MaxLength = 76;

    /// <summary>The rule as containerd prints it in its error messages.</summary>
    public const string Pattern = "^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$";

    /// <summary>Throws <see cref="InvalidIdentifierException"/> unless <paramref name="id"/> is valid.</summary>
    public static void Validate(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (id.Length == 0)
        {
            throw new InvalidIdentifierException(id, "identifier must not be empty: invalid argument");
        }

        if (Encoding.UTF8.GetByteCount(id) > MaxLength)
        {
            throw new InvalidIdentifierException(
                id, $"identifier {GoText.Quote(id)} greater than maximum length ({MaxLength} characters): invalid argument");
        }

        if (!Matches(id))
        {
            throw new InvalidIdentifierException(id, $"identifier {GoText.Quote(id)} must match {Pattern}: invalid argument");
        }
    }

    /// <summary>True when <paramref name="id"/> passes <see cref="Validate"/>.</summary>
    public static bool IsValid(string? id)
    {
        return id is { Length: > 0 } && Encoding.UTF8.GetByteCount(id) <= MaxLength && Matches(id);
    }

    // A hand-written matcher rather than a Regex: .NET's '$' also matches before a final '\n'.
    private static bool Matches(string id)
    {
        bool previousWasSeparator = true; // the first character must be alphanumeric
        foreach (char c in id)
        {
            if (char.IsAsciiLetterOrDigit(c))
            {
                previousWasSeparator = false;
            }
            else if ((c is '.' or '_' or '-') && !previousWasSeparator)
            {
                previousWasSeparator = true;
            }
            else
            {
                return false;
            }
        }

        return !previousWasSeparator;
    }
}

/// <summary>An identifier (namespace, VM id, container id) that breaks containerd's rules.</summary>
public sealed class InvalidIdentifierException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="identifier"/> with containerd's message.</summary>
    public InvalidIdentifierException(string identifier, string message)
        : base(message)
    {
        Identifier = identifier;
    }

    /// <summary>Creates the exception with a context prefix in front of an inner identifier error.</summary>
    public InvalidIdentifierException(string identifier, string message, Exception inner)
        : base(message, inner)
    {
        Identifier = identifier;
    }

    /// <summary>The rejected identifier.</summary>
    public string Identifier { get; }

    /// <summary>Wraps <paramref name="inner"/> with a prefix such as "invalid vm id".</summary>
    internal static InvalidIdentifierException Wrap(string prefix, InvalidIdentifierException inner)
    {
        return new InvalidIdentifierException(inner.Identifier, $"{prefix}: {inner.Message}", inner);
    }
}
