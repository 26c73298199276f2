namespace FirecrackerContainerd.Core.Tests;

public sealed class UntrustedTextTests
{
    [Theory]
    [InlineData("ext4", 8, "ext4")]
    [InlineData("abcdefghij", 4, "abcd...")]
    [InlineData("Paused\u001b[2J", 64, "Paused?[2J")]
    [InlineData("a\nb\0c", 64, "a?b?c")]
    [InlineData("", 4, "")]
    public void Text_is_cut_to_its_length_and_control_characters_read_as_question_marks(string text, int maxLength, string shown)
    {
        Assert.Equal(shown, UntrustedText.Shown(text, maxLength));
    }
}
