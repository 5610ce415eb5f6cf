using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Vhdx;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Tests.Drivers.Vhdx;

/// <summary>
/// Records every write and resize the driver sends to its file, then "crashes" after each one: the image made
/// of the first k of them must open (replaying the log where one was left), check clean, and show every
/// guest write that had completed, and each other write either whole or not at all.
/// </summary>
public class VhdxCrashConsistencyTests
{
    private sealed class RecordingNode(byte[] initial) : BlockNode(NodeSettings.Default)
    {
        private byte[] _data = (byte[])initial.Clone();

        public List<(long Offset, byte[]? Data, long NewLength)> Events { get; } = [];

        public override string DriverName => "memory";

        public override string Filename => "recording";

        public override long Length => _data.Length;

        protected override bool Growable => true;

        protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            lock (Events)
            {
                buffer.Span.Clear();
                if (offset < _data.Length)
                    _data.AsSpan((int)offset, (int)Math.Min(buffer.Length, _data.Length - offset)).CopyTo(buffer.Span);
            }

            return ValueTask.CompletedTask;
        }

        protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
        {
            lock (Events)
            {
                Apply(ref _data, offset, data.Span.ToArray(), -1);
                Events.Add((offset, data.ToArray(), -1));
            }

            return ValueTask.CompletedTask;
        }

        protected override ValueTask WriteZeroesCoreAsync(long offset, long length, RequestFlags flags, CancellationToken cancellationToken) =>
            WriteCoreAsync(offset, new byte[length], flags, cancellationToken);

        protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken)
        {
            lock (Events)
            {
                Apply(ref _data, 0, null, size);
                Events.Add((0, null, size));
            }

            return ValueTask.CompletedTask;
        }

        public static void Apply(ref byte[] data, long offset, byte[]? bytes, long newLength)
        {
            if (bytes == null)
            {
                Array.Resize(ref data, (int)newLength);
                return;
            }

            if (offset + bytes.Length > data.Length)
                Array.Resize(ref data, (int)(offset + bytes.Length));
            bytes.CopyTo(data, offset);
        }
    }

    [Fact]
    public async Task Every_crash_point_leaves_an_image_that_opens_checks_clean_and_holds_whole_writes()
    {
        const int block = 1 << 20;
        byte[] initial = await VhdxTestImage.CreateAsync(6 * block, block);
        var rec = new RecordingNode(initial);
        // (guest offset, length, fill, events recorded when the write returned)
        var writes = new List<(long Offset, int Length, byte Fill, int DoneAt)>();
        var node = await VhdxNode.OpenAsync(rec, NodeSettings.Default);
        await using (node)
        {
            (long, int, byte)[] plan = [(0, 4096, 0x11), (3L * block, 100_000, 0x22), (block + 512, (2 * block) - 1024, 0x33), (5L * block, block, 0x44), (8000, 200, 0x55)];
            foreach (var (off, len, fill) in plan)
            {
                await node.WriteAsync(off, Enumerable.Repeat(fill, len).ToArray());
                writes.Add((off, len, fill, rec.Events.Count));
            }
        }

        int replays = 0;
        for (int k = 0; k <= rec.Events.Count; k++)
        {
            byte[] image = (byte[])initial.Clone();
            for (int i = 0; i < k; i++)
                RecordingNode.Apply(ref image, rec.Events[i].Offset, rec.Events[i].Data, rec.Events[i].NewLength);

            // Read-only, an image left with a log is refused with QEMU's hint, never misread.
            try
            {
                await using var ro = await VhdxTestImage.OpenAsync(VhdxTestImage.File(image, readOnly: true), readOnly: true);
            }
            catch (BlockException ex) when (ex.Errno == Errno.EPERM)
            {
                Assert.Contains("qemu-img check -r all", ex.Message, StringComparison.Ordinal);
            }

            var file = VhdxTestImage.File(image);
            await using var again = await VhdxTestImage.OpenAsync(file);
            if (again.LogReplayedOnOpen)
                replays++;
            Assert.Equal(0, (await again.CheckAsync(ImageCheckMode.None, null)).Corruptions);
            byte[] disk = await VhdxIoTests.ReadAllAsync(again);
            // The writes do not overlap: each reads whole once it completed, and whole or not at all before.
            foreach (var (off, len, fill, done) in writes)
            {
                var span = disk.AsSpan((int)off, len);
                bool whole = !span.ContainsAnyExcept(fill);
                Assert.True(whole || (done > k && !span.ContainsAnyExcept((byte)0)), $"crash after event {k}: the write of 0x{fill:x2} at {off} is torn or lost");
            }

            Assert.False(disk.AsSpan(8200, block - 8200).ContainsAnyExcept((byte)0), $"crash after event {k}: bytes appeared where nothing was written");
        }

        Assert.True(replays > 0, "no crash point left a log to replay: the BAT updates do not go through the log");
    }
}
