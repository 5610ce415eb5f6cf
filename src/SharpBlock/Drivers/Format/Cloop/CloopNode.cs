using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Cloop;

/// <summary>
/// A compressed loop image (cloop V2): fixed-size blocks, each a zlib stream, found through a table of
/// n_blocks + 1 offsets. Read-only, as in QEMU. The last block read stays decompressed, since guests and
/// convert read a block in many small pieces.
/// </summary>
public sealed class CloopNode : BlockNode
{
    private readonly BlockNode _file;
    private readonly CloopHeader _header;
    private readonly ulong[] _offsets;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly byte[] _block;
    private long _cached = -1;

    private CloopNode(BlockNode file, NodeSettings settings, CloopHeader header, ulong[] offsets)
        : base(settings)
    {
        _file = file;
        _header = header;
        _offsets = offsets;
        _block = new byte[header.BlockSize];
        AttachChild(file, ChildRole.File, "file");
    }

    public override string DriverName => "cloop";

    public override long Length => (long)_header.BlockCount * _header.BlockSize;

    /// <summary>QEMU's cloop has no get_info: info shows no dirty flag and no format-specific part.</summary>
    public override bool HasDriverInfo => false;

    internal CloopHeader Header => _header;

    /// <summary>The format only reads; opening it writable is refused in QEMU's words.</summary>
    internal static void RefuseWritable(NodeSettings settings)
    {
        if (!settings.ReadOnly)
            throw new BlockException(Errno.EACCES, "Image is read-only");
    }

    /// <summary>Opens an image from its file node, refusing (in QEMU's words and order) what QEMU refuses, and offsets past the file.</summary>
    public static async ValueTask<CloopNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        RefuseWritable(settings);
        long fileLength = file.Length;
        if (fileLength < CloopLayout.HeaderEnd)
            throw new BlockException(Errno.EIO, $"cloop header lies beyond the end of the file ({fileLength} bytes)");
        byte[] hb = new byte[CloopHeader.Size];
        await file.ReadAsync(CloopLayout.HeaderOffset, hb, cancellationToken).ConfigureAwait(false);
        var h = CloopHeader.Read(hb);
        Validate(h);

        // Beyond QEMU: a table that does not fit in the file is refused before it is allocated, so the file's
        // size bounds what a hostile n_blocks can make us allocate.
        if (CloopLayout.OffsetsOffset + h.OffsetsBytes > fileLength)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"cloop offset table ({h.BlockCount + 1} entries at offset {CloopLayout.OffsetsOffset}) lies beyond the end of the file ({fileLength} bytes)"));
        byte[] raw = new byte[h.OffsetsBytes];
        await file.ReadAsync(CloopLayout.OffsetsOffset, raw, cancellationToken).ConfigureAwait(false);
        var offsets = new ulong[h.BlockCount + 1];
        for (int i = 0; i < offsets.Length; i++)
            offsets[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
        ValidateOffsets(offsets, fileLength);
        return new CloopNode(file, settings, h, offsets);
    }

    /// <summary>QEMU 7.2's checks of the header, in its order and words.</summary>
    internal static void Validate(CloopHeader h)
    {
        if (h.BlockSize % CloopLayout.SectorSize != 0)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"block_size {h.BlockSize} must be a multiple of 512"));
        if (h.BlockSize == 0)
            throw new BlockException(Errno.EINVAL, "block_size cannot be zero");
        if (h.BlockSize > CloopLayout.MaxBlockSize)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"block_size {h.BlockSize} must be {CloopLayout.MaxBlockSize >> 20} MB or less"));
        if (h.BlockCount > CloopLayout.MaxBlocks)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"n_blocks {h.BlockCount} must be {CloopLayout.MaxBlocks} or less"));
        if (h.OffsetsBytes > CloopLayout.MaxOffsetsBytes)
            throw new BlockException(Errno.EINVAL, "image requires too many offsets, try increasing block size");
    }

    /// <summary>QEMU's checks of the table (monotonic, no block larger than zlib could make it), and beyond QEMU, the last offset within the file.</summary>
    internal static void ValidateOffsets(ReadOnlySpan<ulong> offsets, long fileLength)
    {
        for (int i = 1; i < offsets.Length; i++)
        {
            if (offsets[i] < offsets[i - 1])
                throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"offsets not monotonically increasing at index {i}, image file is corrupt"));
            if (offsets[i] - offsets[i - 1] > CloopLayout.MaxCompressedBlockSize)
                throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"invalid compressed block size at index {i}, image file is corrupt"));
        }

        if (offsets[^1] > (ulong)fileLength)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"cloop offset {offsets.Length - 1} (0x{offsets[^1]:x}) lies beyond the end of the file ({fileLength} bytes), image file is corrupt"));
    }

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int bs = (int)_header.BlockSize;
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (buffer.Length > 0)
            {
                long block = offset / bs;
                int inBlock = (int)(offset % bs);
                int n = Math.Min(buffer.Length, bs - inBlock);
                if (_cached != block)
                    await LoadAsync(block, cancellationToken).ConfigureAwait(false);
                _block.AsSpan(inBlock, n).CopyTo(buffer.Span);
                offset += n;
                buffer = buffer[n..];
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Decompresses one block into the cache; a stream that does not end exactly at block_size bytes is damage (EIO, as in QEMU).</summary>
    private async ValueTask LoadAsync(long block, CancellationToken cancellationToken)
    {
        _cached = -1;
        ulong start = _offsets[block];
        int size = (int)(_offsets[block + 1] - start);
        byte[] packed = ArrayPool<byte>.Shared.Rent(Math.Max(size, 1));
        try
        {
            await _file.ReadAsync((long)start, packed.AsMemory(0, size), cancellationToken).ConfigureAwait(false);
            if (!Inflate(packed.AsSpan(0, size), _block))
                throw new BlockException(Errno.EIO, string.Create(CultureInfo.InvariantCulture, $"cloop block {block} at offset {start} ({size} bytes) does not decompress to {_block.Length} bytes"));
            _cached = block;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(packed);
        }
    }

    /// <summary>True when <paramref name="packed"/> is one zlib stream of exactly <paramref name="into"/>'s length.</summary>
    internal static bool Inflate(ReadOnlySpan<byte> packed, Span<byte> into)
    {
        try
        {
            unsafe
            {
                fixed (byte* p = packed)
                {
                    using var ms = new UnmanagedMemoryStream(p, packed.Length);
                    using var z = new ZLibStream(ms, CompressionMode.Decompress);
                    int got = 0;
                    while (got < into.Length)
                    {
                        int r = z.Read(into[got..]);
                        if (r == 0)
                            return false;
                        got += r;
                    }

                    Span<byte> one = stackalloc byte[1];
                    return z.Read(one) == 0;
                }
            }
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EACCES, "Image is read-only");

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>QEMU 7.2 cannot resize this format; qemu-img's words.</summary>
    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Image format driver does not support resize");

    protected override ValueTask CloseCoreAsync()
    {
        _lock.Dispose();
        return ValueTask.CompletedTask;
    }
}
