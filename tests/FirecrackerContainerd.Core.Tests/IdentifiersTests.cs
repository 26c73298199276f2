using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Tests;

public class IdentifiersTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("1")]
    [InlineData("test-123")]
    [InlineData("123.456")]
    [InlineData("a_b.c-d")]
    [InlineData("UPPER.lower")]
    public void Validate_accepts_containerd_identifiers(string id)
    {
        Identifiers.Validate(id);
        Assert.True(Identifiers.IsValid(id));
    }

    [Theory]
    [InlineData("", "identifier must not be empty: invalid argument")]
    [InlineData("/", "identifier \"/\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("?", "identifier \"?\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("a/b", "identifier \"a/b\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("..", "identifier \"..\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("a\\b", "identifier \"a\\\\b\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("a\0b", "identifier \"a\\x00b\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("abc\n", "identifier \"abc\\n\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("a\u2215b", "identifier \"a\u2215b\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("a\u200bb", "identifier \"a\\u200bb\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("-a", "identifier \"-a\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("a-", "identifier \"a-\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("a--b", "identifier \"a--b\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    [InlineData("\uff0fetc", "identifier \"\uff0fetc\" must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument")]
    public void Validate_rejects_with_containerds_message(string id, string message)
    {
        var e = Assert.Throws<InvalidIdentifierException>(() => Identifiers.Validate(id));
        Assert.Equal(message, e.Message);
        Assert.False(Identifiers.IsValid(id));
    }

    [Fact]
    public void Validate_accepts_76_characters_and_rejects_77()
    {
        Identifiers.Validate(new string('a', 76));
        string tooLong = new('a', 77);
        var e = Assert.Throws<InvalidIdentifierException>(() => Identifiers.Validate(tooLong));
        Assert.Equal($"identifier \"{tooLong}\" greater than maximum length (76 characters): invalid argument", e.Message);
    }

    [Fact]
    public void Validate_counts_length_in_utf8_bytes_like_go()
    {
        // 38 two-byte characters are 76 bytes, still invalid for their characters, but the length check comes first.
        string wide = new('\u00e9', 39);
        var e = Assert.Throws<InvalidIdentifierException>(() => Identifiers.Validate(wide));
        Assert.Contains("greater than maximum length", e.Message, StringComparison.Ordinal);
    }
}
