using SharpBlock.Drivers.Format.Vhdx;
using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Vhdx;

/// <summary>
/// Our log entries replayed by QEMU: the driver writes to a real file through a node that stops passing
/// writes after the k-th (a crash at that point, with everything before it on disk), for every k of an
/// allocating write. Whatever is left, qemu-img check -r all must accept (replaying our log where one was
/// left), and the write must then read whole or not at all.
/// </summary>
public class VhdxLogInteropTests
{
    /// <summary>Passes the first <c>allowed</c> writes and resizes to the file, then fails every later one.</summary>
    private sealed class CrashingNode(FileNode file, int allowed) : BlockNode(NodeSettings.Default)
    {
        private int _done;

        public bool Crashed => _done > allowed;

        public override string DriverName => "file";

        public override string Filename => file.Filename;

        public override long Length => file.Length;

        protected override bool Growable => true;

        private void Step()
        {
            if (++_done > allowed)
                throw new BlockException(Errno.EIO, "crashed");
        }

        protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) => file.ReadAsync(offset, buffer, cancellationToken);

        protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
        {
            Step();
            return file.WriteAsync(offset, data, flags, cancellationToken);
        }

        protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken)
        {
            Step();
            return file.TruncateAsync(size, cancellationToken);
        }

        protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => file.FlushAsync(cancellationToken);
    }

    [Fact]
    public async Task Qemu_replays_the_log_our_writer_leaves_at_every_crash_point()
    {
        using var dir = new TempDir();
        string pristine = dir.File("pristine.vhdx");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=1M", pristine, "8M")).Ok();
        int replayed = 0, completed = -1;
        for (int k = 0; k < 40 && completed < 0; k++)
        {
            string img = dir.File($"crash-{k}.vhdx");
            File.Copy(pristine, img);
            var file = FileNode.Open(img, NodeSettings.Default);
            var crashing = new CrashingNode(file, k);
            try
            {
                var node = await VhdxNode.OpenAsync(crashing, NodeSettings.Default);
                try
                {
                    await node.WriteAsync(3 << 20, Enumerable.Repeat((byte)0x6b, 8192).ToArray());
                }
                finally
                {
                    await node.DisposeAsync();
                }
            }
            catch (BlockException ex) when (crashing.Crashed)
            {
                Assert.Contains("crashed", ex.Message, StringComparison.Ordinal);
            }

            if (!crashing.Crashed)
                completed = k;
            await file.DisposeAsync();

            var check = await Tools.RunAsync("qemu-img", "check", img);
            if (check.ExitCode != 0)
            {
                Assert.Contains("contains a log that needs to be replayed", check.Stderr, StringComparison.Ordinal);
                replayed++;
                var repair = await Tools.RunAsync("qemu-img", "check", "-r", "all", img);
                Assert.True(repair.ExitCode == 0, $"crash after write {k}: qemu-img check -r all exit {repair.ExitCode}\n{repair.Stdout}{repair.Stderr}");
            }

            Assert.Equal(0, (await Tools.RunAsync("qemu-img", "check", img)).ExitCode);
            var whole = await Tools.RunAsync("qemu-io", "-f", "vhdx", "-c", "read -P 0x6b 3M 8k", img);
            var none = await Tools.RunAsync("qemu-io", "-f", "vhdx", "-c", "read -P 0 3M 8k", img);
            bool isWhole = !whole.Stdout.Contains("Pattern verification failed", StringComparison.Ordinal);
            bool isNone = !none.Stdout.Contains("Pattern verification failed", StringComparison.Ordinal);
            Assert.True(isWhole || isNone, $"crash after write {k}: the write is torn\n{whole.Stdout}");
            if (completed >= 0)
                Assert.True(isWhole, "the write that completed does not read back");
        }

        Assert.True(completed > 0, "the write never completed within 40 file writes");
        Assert.True(replayed > 0, "no crash point left a log for qemu to replay");
    }
}
