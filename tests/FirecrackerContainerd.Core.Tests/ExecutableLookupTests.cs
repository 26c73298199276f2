using FirecrackerContainerd.Core;

namespace FirecrackerContainerd.Tests;

public sealed class ExecutableLookupTests : IDisposable
{
    private const UnixFileMode Executable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode NotExecutable = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Find_returns_the_first_search_path_directory_holding_the_name()
    {
        string first = Program("first", "tool", Executable);
        Program("second", "tool", Executable);

        Assert.Equal(first, ExecutableLookup.Find("tool", SearchPath("missing", "first", "second")));
    }

    [Fact]
    public void Find_returns_null_when_no_directory_holds_the_name()
    {
        Program("first", "other", Executable);

        Assert.Null(ExecutableLookup.Find("tool", SearchPath("first", "missing")));
    }

    [Fact]
    public void Find_returns_null_for_a_file_without_an_execute_bit()
    {
        Program("first", "tool", NotExecutable);

        Assert.Null(ExecutableLookup.Find("tool", SearchPath("first")));
    }

    [Fact]
    public void Find_passes_over_a_file_that_is_not_executable_for_the_next_directory()
    {
        Program("first", "tool", NotExecutable);
        string second = Program("second", "tool", Executable);

        Assert.Equal(second, ExecutableLookup.Find("tool", SearchPath("first", "second")));
    }

    [Fact]
    public void Find_takes_a_group_or_other_execute_bit_as_executable()
    {
        string tool = Program("first", "tool", NotExecutable | UnixFileMode.OtherExecute);

        Assert.Equal(tool, ExecutableLookup.Find("tool", SearchPath("first")));
    }

    [Fact]
    public void Find_does_not_take_a_directory_of_that_name()
    {
        Directory.CreateDirectory(_dir.Combine("first", "tool"));

        Assert.Null(ExecutableLookup.Find("tool", SearchPath("first")));
    }

    [Fact]
    public void Find_uses_a_path_with_a_slash_as_it_is_without_searching()
    {
        string tool = Program("first", "tool", Executable);
        Program("first", "sub/tool", Executable);

        Assert.Equal(tool, ExecutableLookup.Find(tool, SearchPath("missing")));
        Assert.Null(ExecutableLookup.Find("sub/tool", SearchPath("first")));
        Assert.Null(ExecutableLookup.Find(_dir.Combine("first", "absent"), SearchPath("first")));
    }

    [Fact]
    public void Find_returns_null_for_a_path_with_a_slash_that_is_not_executable()
    {
        string tool = Program("first", "tool", NotExecutable);

        Assert.Null(ExecutableLookup.Find(tool, SearchPath("first")));
    }

    [Fact]
    public void Find_searches_the_default_path_when_none_is_given()
    {
        Assert.Equal("/usr/bin/sh", ExecutableLookup.Find("sh", searchPath: null));
    }

    [Fact]
    public void Find_skips_empty_search_path_entries()
    {
        Program("first", "tool", Executable);

        Assert.Equal(_dir.Combine("first", "tool"), ExecutableLookup.Find("tool", ":" + _dir.Combine("first") + ":"));
    }

    [Fact]
    public void Find_rejects_an_empty_name()
    {
        Assert.Throws<ArgumentException>(() => ExecutableLookup.Find("", SearchPath("first")));
    }

    private string Program(string directory, string name, UnixFileMode mode)
    {
        string path = _dir.Combine(directory, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "#!/bin/sh\n");
        File.SetUnixFileMode(path, mode);
        return path;
    }

    private string SearchPath(params string[] directories) => string.Join(':', directories.Select(d => _dir.Combine(d)));
}
