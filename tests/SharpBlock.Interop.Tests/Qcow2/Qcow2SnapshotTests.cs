using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2;

/// <summary>Internal snapshots made, listed, applied and deleted by us, judged by qemu-img and qemu-io.</summary>
public class Qcow2SnapshotTests
{
    [Theory]
    [InlineData("compat=1.1")]
    [InlineData("compat=0.10")]
    public async Task Create_apply_delete_keep_the_image_consistent(string options)
    {
        using var dir = new TempDir();
        string img = dir.File("s.qcow2");
        (await Tools.RunAsync("qemu-img", "create", "-f", "qcow2", "-o", options, img, "2M")).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 1 0 1M", img)).Ok();
        (await Tools.RunAsync("sharpblock", "img", "snapshot", "-c", "first", img)).Ok();
        (await Tools.RunAsync("qemu-io", "-c", "write -P 2 0 64k", img)).Ok();
        (await Tools.RunAsync("sharpblock", "img", "snapshot", "-c", "second", img)).Ok();
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();

        var theirs = (await Tools.RunAsync("qemu-img", "snapshot", "-l", img)).Ok();
        var ours = (await Tools.RunAsync("sharpblock", "img", "snapshot", "-l", img)).Ok();
        Assert.Equal(theirs.Stdout, ours.Stdout);
        Assert.Contains("second", ours.Stdout, StringComparison.Ordinal);

        (await Tools.RunAsync("sharpblock", "img", "snapshot", "-a", "first", img)).Ok();
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
        var r = (await Tools.RunAsync("qemu-io", "-c", "read -P 1 0 1M", img)).Ok();
        Assert.DoesNotContain("Pattern verification failed", r.Stdout, StringComparison.Ordinal);

        (await Tools.RunAsync("sharpblock", "img", "snapshot", "-d", "first", img)).Ok();
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();
        (await Tools.RunAsync("qemu-img", "snapshot", "-a", "second", img)).Ok();
        r = (await Tools.RunAsync("qemu-io", "-c", "read -P 2 0 64k", "-c", "read -P 1 64k 64k", img)).Ok();
        Assert.DoesNotContain("Pattern verification failed", r.Stdout, StringComparison.Ordinal);
        (await Tools.RunAsync("sharpblock", "img", "snapshot", "-d", "2", img)).Ok();
        Assert.Equal("", (await Tools.RunAsync("qemu-img", "snapshot", "-l", img)).Ok().Stdout);
        (await Tools.RunAsync("qemu-img", "check", img)).Ok();

        var missing = await Tools.RunAsync("sharpblock", "img", "snapshot", "-d", "nope", img);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("Could not delete snapshot 'nope'", missing.Stderr, StringComparison.Ordinal);
    }
}
