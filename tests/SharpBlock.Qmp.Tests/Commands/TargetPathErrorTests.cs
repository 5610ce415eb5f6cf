using SharpBlock.Testing;

namespace SharpBlock.Qmp.Tests.Commands;

/// <summary>
/// Targets that cannot be created or opened, for every command that takes a path: the client reads QEMU's
/// "Could not create/open 'X': strerror" (each wording checked against qemu-storage-daemon 7.2; change
/// follows the open wording), never .NET's exception text.
/// </summary>
public class TargetPathErrorTests
{
    public static TheoryData<string, string, string> Cases() => new()
    {
        // command, arguments with {0} for the target, expected desc with {0}
        { "drive-mirror", "\"sync\": \"full\", \"format\": \"raw\"", "Could not create '{0}': No such file or directory" },
        { "drive-mirror", "\"sync\": \"full\", \"format\": \"qcow2\"", "Could not create '{0}': No such file or directory" },
        { "drive-mirror", "\"sync\": \"full\", \"mode\": \"existing\"", "Could not open '{0}': No such file or directory" },
        { "drive-mirror", "\"sync\": \"full\", \"format\": \"raw\", \"mode\": \"existing\"", "Could not open '{0}': No such file or directory" },
        { "drive-backup", "\"sync\": \"full\", \"format\": \"raw\"", "Could not create '{0}': No such file or directory" },
        { "drive-backup", "\"sync\": \"full\", \"mode\": \"existing\"", "Could not open '{0}': No such file or directory" },
        { "blockdev-snapshot-sync", "\"format\": \"qcow2\"", "Could not create '{0}': No such file or directory" },
        { "blockdev-snapshot-sync", "\"format\": \"qcow2\", \"mode\": \"existing\"", "Could not open '{0}': No such file or directory" },
        { "change", "", "Could not open '{0}': No such file or directory" },
        { "change", "\"arg\": \"raw\"", "Could not open '{0}': No such file or directory" },
    };

    private static string Arguments(string command, string extra, string target)
    {
        string key = command == "blockdev-snapshot-sync" ? "snapshot-file" : "target";
        return "{\"device\": \"d0\", \"" + key + "\": \"" + target + "\"" + (extra.Length > 0 ? ", " + extra : "") + "}";
    }

    private static async Task<string> ErrorAsync(QmpHarness h, string command, string extra, string target)
    {
        var (cls, desc) = await h.Client.ErrorAsync(command, Arguments(command, extra, target));
        Assert.Equal("GenericError", cls);
        Assert.DoesNotContain("System.", desc, StringComparison.Ordinal);
        Assert.DoesNotContain("part of the path", desc, StringComparison.Ordinal);
        Assert.DoesNotContain("Access to the path", desc, StringComparison.Ordinal);
        return desc;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task A_target_in_a_missing_directory_names_the_path_and_the_errno(string command, string extra, string expected)
    {
        await using var h = await QmpHarness.StartAsync();
        await h.AddRawAsync("d0", h.Dir.PatternFile("a.img", 1 << 20));
        string target = h.Dir.File("nodir/t.img");
        Assert.Equal(string.Format(System.Globalization.CultureInfo.InvariantCulture, expected, target), await ErrorAsync(h, command, extra, target));
        // The device is untouched and the session goes on.
        await h.Client.ReturnAsync("query-block");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task A_directory_as_target_is_a_directory(string command, string extra, string expected)
    {
        await using var h = await QmpHarness.StartAsync();
        await h.AddRawAsync("d0", h.Dir.PatternFile("a.img", 1 << 20));
        string target = Directory.CreateDirectory(h.Dir.File("dir")).FullName;
        string reason = expected.Replace("No such file or directory", "Is a directory", StringComparison.Ordinal);
        Assert.Equal(string.Format(System.Globalization.CultureInfo.InvariantCulture, reason, target), await ErrorAsync(h, command, extra, target));
    }

    [Theory]
    [InlineData("drive-mirror", "\"sync\": \"full\", \"format\": \"raw\"")]
    [InlineData("drive-backup", "\"sync\": \"full\", \"format\": \"qcow2\"")]
    [InlineData("blockdev-snapshot-sync", "\"format\": \"qcow2\"")]
    public async Task A_target_below_a_regular_file_or_where_writing_is_refused_gets_its_strerror(string command, string extra)
    {
        await using var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 1 << 20);
        await h.AddRawAsync("d0", img);
        string below = img + "/t.img";
        Assert.Equal($"Could not create '{below}': Not a directory", await ErrorAsync(h, command, extra, below));
        // sysfs refuses new files even to root (EACCES), or is mounted read-only in some containers.
        string sys = "/sys/sharpblock-" + Guid.NewGuid().ToString("N") + ".img";
        Assert.Matches($"^Could not create '{sys}': (Permission denied|Read-only file system)$", await ErrorAsync(h, command, extra, sys));
    }
}
