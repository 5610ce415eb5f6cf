using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow;

/// <summary>
/// A qcow version 1 image: a header, a one-level L1 table of L2 table offsets, L2 tables of cluster offsets
/// (bit 63 marks a deflated cluster), and clusters appended at the end of the file as they are written.
/// New L2 entries and L1 entries are kept in memory and reach the file at the next flush, after the data they
/// point at has been flushed (see QcowNode.Io.cs).
/// </summary>
public sealed partial class QcowNode : BlockNode
{
    /// <summary>L2 tables kept in memory at most (dirty ones are flushed before any is dropped).</summary>
    private const int L2CacheTables = 64;

    private readonly BlockNode _file;
    private readonly FormatDebugEvents _debug;
    private readonly QcowHeader _header;
    private readonly ulong[] _l1;
    private readonly int _clusterBits;
    private readonly int _clusterSize;
    private readonly int _l2Entries;
    private readonly string? _backingName;
    private readonly long _length;

    private QcowNode(BlockNode file, NodeSettings settings, QcowHeader header, ulong[] l1, string? backingName)
        : base(settings)
    {
        _file = file;
        _header = header;
        _l1 = l1;
        _clusterBits = header.ClusterBits;
        _clusterSize = 1 << header.ClusterBits;
        _l2Entries = 1 << header.L2Bits;
        _backingName = backingName;
        // QEMU counts whole sectors of the recorded size.
        _length = (long)(header.DiskSize / QcowLayout.SectorSize * QcowLayout.SectorSize);
        // New clusters go at the end of the file, cluster aligned, as QEMU places them.
        _next = AlignUp(file.Length, _clusterSize);
        AttachChild(file, ChildRole.File, "file");
        _debug = FormatDebugEvents.Attach(file);
    }

    public override string DriverName => "qcow";

    public override long Length => _length;

    public override string? BackingFileName => _backingName;

    public int ClusterSize => _clusterSize;

    internal QcowHeader Header => _header;

    private string FileName => _file.Filename;

    internal void AttachBacking(BlockNode backing) => AttachChild(backing, ChildRole.Backing, "backing");

    private static long AlignUp(long v, long a) => (v + a - 1) / a * a;

    /// <summary>Opens an image from its file node, refusing what QEMU refuses (in its words) and what would not fit the file.</summary>
    public static async ValueTask<QcowNode> OpenAsync(BlockNode file, NodeSettings settings, CancellationToken cancellationToken = default)
    {
        file.RefuseOtherWriters();
        long fileLength = file.Length;
        if (fileLength < QcowHeader.Size)
            throw new BlockException(Errno.EINVAL, $"Image not in qcow format (file of {fileLength} bytes is shorter than the header)");
        byte[] head = new byte[QcowHeader.Size];
        await file.ReadAsync(0, head, cancellationToken).ConfigureAwait(false);
        var h = QcowHeader.Read(head);
        long l1Entries = Validate(h);

        long l1Bytes = l1Entries * 8;
        if (h.L1TableOffset > (ulong)fileLength || (long)h.L1TableOffset + l1Bytes > fileLength)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"qcow L1 table (l1_table_offset 0x{h.L1TableOffset:x}, {l1Entries} entries) lies beyond the end of the file ({fileLength} bytes)"));
        if (h.L1TableOffset < QcowHeader.Size)
            throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"qcow L1 table (l1_table_offset 0x{h.L1TableOffset:x}) overlaps the header"));
        byte[] raw = new byte[l1Bytes];
        await file.ReadAsync((long)h.L1TableOffset, raw, cancellationToken).ConfigureAwait(false);
        var l1 = new ulong[l1Entries];
        for (int i = 0; i < l1.Length; i++)
            l1[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));

        string? backing = null;
        if (h.BackingFileOffset != 0)
        {
            if (h.BackingFileSize > QcowLayout.MaxBackingNameLength)
                throw new BlockException(Errno.EINVAL, "Backing file name too long");
            if (h.BackingFileOffset > (ulong)fileLength || (long)h.BackingFileOffset + h.BackingFileSize > fileLength)
                throw new BlockException(Errno.EINVAL, string.Create(CultureInfo.InvariantCulture, $"qcow backing file name (backing_file_offset 0x{h.BackingFileOffset:x}, backing_file_size {h.BackingFileSize}) lies beyond the end of the file ({fileLength} bytes)"));
            byte[] name = new byte[h.BackingFileSize];
            await file.ReadAsync((long)h.BackingFileOffset, name, cancellationToken).ConfigureAwait(false);
            backing = Encoding.UTF8.GetString(name);
        }

        return new QcowNode(file, settings, h, l1, backing);
    }

    /// <summary>QEMU 7.2's checks of a qcow header, in its order and words; returns the number of L1 entries.</summary>
    internal static long Validate(QcowHeader h)
    {
        if (h.Magic != QcowLayout.Magic)
            throw new BlockException(Errno.EINVAL, "Image not in qcow format");
        if (h.Version != QcowLayout.Version)
            throw new BlockException(Errno.EOPNOTSUPP, string.Create(CultureInfo.InvariantCulture, $"qcow (v1) does not support qcow version {h.Version}"));
        if (h.DiskSize <= 1)
            throw new BlockException(Errno.EINVAL, "Image size is too small (must be at least 2 bytes)");
        if (h.ClusterBits is < QcowLayout.MinClusterBits or > QcowLayout.MaxClusterBits)
            throw new BlockException(Errno.EINVAL, "Cluster size must be between 512 and 64k");
        if (h.L2Bits is < QcowLayout.MinL2Bits or > QcowLayout.MaxL2Bits)
            throw new BlockException(Errno.EINVAL, "L2 table size must be between 512 and 64k");
        if (h.CryptMethod > QcowLayout.CryptAes)
            throw new BlockException(Errno.EINVAL, "invalid encryption method in qcow header");
        int shift = h.ClusterBits + h.L2Bits;
        if (h.DiskSize > ulong.MaxValue - (1UL << shift))
            throw new BlockException(Errno.EINVAL, "Image too large");
        ulong l1 = (h.DiskSize + (1UL << shift) - 1) >> shift;
        if (l1 > QcowLayout.MaxL1Entries)
            throw new BlockException(Errno.EINVAL, "Image too large");
        return (long)l1;
    }

    /// <summary>QEMU 7.2 cannot resize this format; qemu-img's words.</summary>
    protected override ValueTask TruncateCoreAsync(long size, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.EOPNOTSUPP, "Image format driver does not support resize");

    public override async ValueTask<ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = await base.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        info.ClusterSize = _clusterSize;
        return info;
    }

    protected override ValueTask CloseCoreAsync()
    {
        _lock.Dispose();
        return ValueTask.CompletedTask;
    }
}
