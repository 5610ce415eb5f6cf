using SharpBlock.Drivers;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Tests.Drivers.Qcow2;

/// <summary>
/// Records every write the driver sends to its file, then "crashes" after each one: the image made of the
/// first k writes must open and check with no unsafe corruption (leaks are allowed), for every k.
/// </summary>
public class Qcow2CrashConsistencyTests
{
    /// <summary>A growable in-memory file that logs writes in the order they were issued.</summary>
    private sealed class RecordingNode : BlockNode
    {
        private byte[] _data;
        private long _length;

        public RecordingNode(byte[] initial, bool readOnly = false)
            : base(NodeSettings.Default with { ReadOnly = readOnly })
        {
            _data = (byte[])initial.Clone();
            _length = initial.Length;
        }

        public List<(long Offset, byte[] Data)> Log { get; } = [];

        public override string DriverName => "memory";

        public override string Filename => "memory";

        public override long Length => _length;

        protected override bool Growable => true;

        protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            lock (Log)
            {
                buffer.Span.Clear();
                if (offset < _length)
                    _data.AsSpan((int)offset, (int)Math.Min(buffer.Length, _length - offset)).CopyTo(buffer.Span);
            }

            return ValueTask.CompletedTask;
        }

        protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
        {
            lock (Log)
            {
                Apply(ref _data, ref _length, offset, data.Span);
                Log.Add((offset, data.ToArray()));
            }

            return ValueTask.CompletedTask;
        }

        protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken)
        {
            lock (Log)
            {
                if (size > _data.Length)
                    Array.Resize(ref _data, (int)size);
                _length = size;
            }

            return ValueTask.CompletedTask;
        }

        public static void Apply(ref byte[] data, ref long length, long offset, ReadOnlySpan<byte> bytes)
        {
            long end = offset + bytes.Length;
            if (end > data.Length)
                Array.Resize(ref data, (int)Math.Max(end, data.Length * 2L));
            bytes.CopyTo(data.AsSpan((int)offset));
            length = Math.Max(length, end);
        }
    }

    [Theory]
    [InlineData(512, 64, false)]
    [InlineData(4096, 16, false)]
    [InlineData(512, 16, true)]
    [InlineData(4096, 16, true)]
    public async Task A_crash_after_any_write_leaves_no_corruption(int clusterSize, int refcountBits, bool lazy)
    {
        using var dir = new SharpBlock.Testing.TempDir();
        string p = dir.File("seed.qcow2");
        await Qcow2TestImage.CreateAsync(p, 2 << 20, clusterSize, refcountBits: refcountBits, lazy: lazy);
        byte[] initial = await File.ReadAllBytesAsync(p);

        var file = new RecordingNode(initial);
        var node = await Qcow2Node.OpenAsync(file, NodeSettings.Default with { Discard = SharpBlock.Schema.BlockdevDiscardOptions.Unmap });
        var rnd = new Random(clusterSize);
        for (int i = 0; i < 40; i++)
        {
            int off = rnd.Next(2 << 20);
            int len = Math.Min(rnd.Next(1, 20_000), (2 << 20) - off);
            switch (i % 8)
            {
                case 6:
                    await node.WriteZeroesAsync(off, len, RequestFlags.MayUnmap);
                    break;
                case 7:
                    await node.DiscardAsync(off, len);
                    await node.FlushAsync();
                    break;
                default:
                    byte[] d = new byte[len];
                    rnd.NextBytes(d);
                    await node.WriteAsync(off, d);
                    break;
            }
        }

        await node.CreateSnapshotAsync("s");
        await node.WriteAsync(1000, new byte[3000]);
        await node.DeleteSnapshotAsync("s");
        await node.DisposeAsync();

        byte[] image = (byte[])initial.Clone();
        long length = initial.Length;
        int behind = 0;
        for (int k = 0; k <= file.Log.Count; k++)
        {
            if (k > 0)
                RecordingNode.Apply(ref image, ref length, file.Log[k - 1].Offset, file.Log[k - 1].Data);
            // Checking every prefix of a long log is slow; every prefix near the end and a stride elsewhere.
            if (k % 3 != 0 && k < file.Log.Count - 50)
                continue;
            // Lazy refcounts may leave refcounts behind the tables, with the dirty bit set: a read-write open
            // must repair that before anything relies on the refcounts.
            if (lazy)
            {
                var raw = await Qcow2Node.OpenAsync(new RecordingNode(image.AsSpan(0, (int)length).ToArray(), readOnly: true), NodeSettings.Default with { ReadOnly = true });
                if ((await raw.CheckAsync(ImageCheckMode.None, null)).UnsafeCorruptions > 0)
                    behind++;
                await raw.DisposeAsync();
            }

            var crashed = new RecordingNode(image.AsSpan(0, (int)length).ToArray(), readOnly: !lazy);
            var q = await Qcow2Node.OpenAsync(crashed, NodeSettings.Default with { ReadOnly = !lazy });
            var lines = new List<string>();
            var r = await q.CheckAsync(ImageCheckMode.None, lines.Add);
            await q.DisposeAsync();
            // A stale copied flag on an unshared cluster (the window while a snapshot is taken) only costs a
            // copy; a refcount below the references or a copied flag on a shared cluster would lose data.
            Assert.True(r.UnsafeCorruptions == 0, $"after write {k} of {file.Log.Count} (at {file.Log[Math.Max(0, k - 1)].Offset}): {r.UnsafeCorruptions} unsafe corruptions\n" + string.Join("\n", lines.Where(l => l.StartsWith("ERROR", StringComparison.Ordinal)).Take(8)));
            if (k == file.Log.Count)
                Assert.Equal(0, r.Corruptions + r.Leaks);
        }

        // The lazy mode must really defer: some crash points have refcounts behind the tables.
        if (lazy)
            Assert.True(behind > 0, "lazy refcounts never left a refcount behind its table");
    }
}
