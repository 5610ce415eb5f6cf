using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Tests.Drivers.Qcow2;

/// <summary>When the dirty bit of lazy refcounts may go: only once the refcounts are known to be on disk.</summary>
public class Qcow2LazyCloseTests
{
    /// <summary>An in-memory file whose next flushes fail, as an fsync does after a lost write-back.</summary>
    private sealed class FlakyFlushNode(byte[] initial) : BlockNode(NodeSettings.Default)
    {
        private byte[] _data = (byte[])initial.Clone();
        private long _length = initial.Length;

        /// <summary>Flushes that still succeed before the failing ones start.</summary>
        public int PassFlushes { get; set; }

        public int FailFlushes { get; set; }

        public byte[] Data => _data.AsSpan(0, (int)_length).ToArray();

        public override string DriverName => "memory";

        public override string Filename => "memory";

        public override long Length => _length;

        protected override bool Growable => true;

        protected override ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            buffer.Span.Clear();
            if (offset < _length)
                _data.AsSpan((int)offset, (int)Math.Min(buffer.Length, _length - offset)).CopyTo(buffer.Span);
            return ValueTask.CompletedTask;
        }

        protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
        {
            long end = offset + data.Length;
            if (end > _data.Length)
                Array.Resize(ref _data, (int)Math.Max(end, _data.Length * 2L));
            data.Span.CopyTo(_data.AsSpan((int)offset));
            _length = Math.Max(_length, end);
            return ValueTask.CompletedTask;
        }

        protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken)
        {
            if (size > _data.Length)
                Array.Resize(ref _data, (int)size);
            _length = size;
            return ValueTask.CompletedTask;
        }

        protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken)
        {
            if (PassFlushes > 0)
            {
                PassFlushes--;
            }
            else if (FailFlushes > 0)
            {
                FailFlushes--;
                throw new BlockException(Errno.EIO, "flush failed");
            }

            return ValueTask.CompletedTask;
        }
    }

    private static bool DirtyBit(byte[] image) =>
        (BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan(Qcow2Header.IncompatibleFeaturesOffset)) & 1) != 0;

    /// <summary>
    /// A close whose last flush failed must leave the dirty bit on: the refcount blocks were written but never
    /// known to be durable (a failed fsync may have dropped them), and only the bit makes the next open rebuild
    /// them. Clearing it because the cache looks clean would leave refcounts behind the tables unnoticed.
    /// </summary>
    [Fact]
    public async Task A_close_after_a_failed_flush_keeps_the_dirty_bit()
    {
        using var dir = new SharpBlock.Testing.TempDir();
        string p = await Qcow2TestImage.CreateAsync(dir.File("lazy.qcow2"), 4 << 20, lazy: true);
        var file = new FlakyFlushNode(await File.ReadAllBytesAsync(p));
        var node = await Qcow2Node.OpenAsync(file, NodeSettings.Default);
        await node.WriteAsync(0, new byte[65536 * 2]);
        Assert.True(DirtyBit(file.Data));

        // The close's flush writes the L2 table, flushes, writes L1 and the refcount blocks, then flushes
        // again: that last flush, the one that would make the refcounts durable, fails.
        file.PassFlushes = 1;
        file.FailFlushes = 1;
        await node.DisposeAsync();
        Assert.True(DirtyBit(file.Data), "the dirty bit was cleared although the refcounts never reached the disk for sure");
    }

    /// <summary>The normal close still clears it.</summary>
    [Fact]
    public async Task A_clean_close_clears_the_dirty_bit()
    {
        using var dir = new SharpBlock.Testing.TempDir();
        string p = await Qcow2TestImage.CreateAsync(dir.File("lazy.qcow2"), 4 << 20, lazy: true);
        var file = new FlakyFlushNode(await File.ReadAllBytesAsync(p));
        var node = await Qcow2Node.OpenAsync(file, NodeSettings.Default);
        await node.WriteAsync(0, new byte[65536 * 2]);
        Assert.True(DirtyBit(file.Data));
        await node.DisposeAsync();
        Assert.False(DirtyBit(file.Data));
    }
}
