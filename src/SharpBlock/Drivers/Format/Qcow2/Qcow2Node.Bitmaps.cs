using System.Buffers.Binary;
using SharpBlock.Bitmaps;
using SharpBlock.Errors;
using SharpBlock.Io;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Persistent dirty bitmaps: the bitmaps extension names a directory, each entry a bitmap table, each table
/// entry one cluster of bits (or none: all clean, or all dirty with bit 0). Loaded at open; a read-write open
/// sets every entry's in-use flag on disk before the first write, so a crash leaves them marked inconsistent;
/// close writes every persistent bitmap to fresh clusters, then a new directory and header, then frees the old
/// ones, so a crash in between leaks clusters at worst and never leaves a directory pointing at freed space.
/// </summary>
public sealed partial class Qcow2Node : IPersistentBitmaps
{
    /// <summary>One directory entry as the image holds it.</summary>
    private sealed record StoredBitmap(string Name, byte GranularityBits, uint Flags, long TableOffset, uint TableSize, byte[] Extra);

    private List<StoredBitmap> _storedBitmaps = [];
    private long _bitmapDirOffset;
    private long _bitmapDirSize;
    private Qcow2BitmapsExtension? _bitmapsExtension;

    /// <summary>The bitmaps the image's directory lists, with their flags as stored (img info's "bitmaps").</summary>
    private List<Qcow2BitmapInfo>? StoredBitmapInfo()
    {
        if (_storedBitmaps.Count == 0)
            return null;
        var list = new List<Qcow2BitmapInfo>(_storedBitmaps.Count);
        foreach (var b in _storedBitmaps)
        {
            var flags = new List<Qcow2BitmapInfoFlags>(2);
            if ((b.Flags & Qcow2Layout.BitmapInUse) != 0)
                flags.Add(Qcow2BitmapInfoFlags.InUse);
            if ((b.Flags & Qcow2Layout.BitmapAuto) != 0)
                flags.Add(Qcow2BitmapInfoFlags.Auto);
            list.Add(new Qcow2BitmapInfo { Name = b.Name, Granularity = 1U << b.GranularityBits, Flags = flags });
        }

        return list;
    }

    /// <summary>Table entries a bitmap of that granularity needs for the current size: one per cluster of bits.</summary>
    private long BitmapTableEntries(int granularityBits)
    {
        long chunks = (_size + (1L << granularityBits) - 1) >> granularityBits;
        long bitsPerCluster = (long)_clusterSize * 8;
        return (chunks + bitsPerCluster - 1) / bitsPerCluster;
    }

    string? IPersistentBitmaps.WhyCannotStore(string name, long granularity)
    {
        if (!V3)
            return "Cannot store dirty bitmaps in qcow2 v2 files";
        if (System.Text.Encoding.UTF8.GetByteCount(name) > Qcow2Layout.MaxBitmapNameBytes)
            return $"Name length exceeds maximum ({Qcow2Layout.MaxBitmapNameBytes} characters)";
        int bits = System.Numerics.BitOperations.Log2((ulong)granularity);
        if (BitmapTableEntries(bits) > Qcow2Layout.MaxBitmapTableEntries || ((_size >> bits) + 8) / 8 > Qcow2Layout.MaxBitmapBytes)
            return "Too much space will be occupied by the bitmap. Use larger granularity";
        int persistent = 0;
        foreach (var b in Bitmaps)
        {
            if (b.Persistent)
                persistent++;
        }

        if (persistent >= Qcow2Layout.MaxBitmaps)
            return "Maximum number of persistent bitmaps is already reached";
        return null;
    }

    async ValueTask IPersistentBitmaps.RemoveStoredBitmapAsync(string name, CancellationToken cancellationToken)
    {
        if (ReadOnly)
            return;
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int i = _storedBitmaps.FindIndex(b => b.Name == name);
            if (i < 0)
                return;
            var gone = _storedBitmaps[i];
            var kept = new List<StoredBitmap>(_storedBitmaps);
            kept.RemoveAt(i);
            await WriteBitmapDirectoryLockedAsync(kept, cancellationToken).ConfigureAwait(false);
            await FreeBitmapClustersLockedAsync(gone, cancellationToken).ConfigureAwait(false);
            await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>Reads the bitmaps extension's data (during the header parse); validated in <see cref="LoadBitmapsAsync"/>.</summary>
    private void ParseBitmapsExtension(ReadOnlySpan<byte> data, long pos)
    {
        if (data.Length < Qcow2BitmapsExtension.Size)
            throw Corrupt("bitmaps extension", pos, "bitmaps extension is too short");
        _bitmapsExtension = Qcow2BitmapsExtension.Read(data);
    }

    /// <summary>
    /// Reads the directory and every bitmap's bits, checking each offset and size against the file and QEMU's
    /// limits first. An extension without the autoclear bit was left by a writer that did not keep it up to
    /// date: it is ignored, as QEMU ignores it.
    /// </summary>
    private async ValueTask LoadBitmapsAsync(long fileLength, CancellationToken ct)
    {
        if (_bitmapsExtension is not { } ext)
            return;
        if ((_header.AutoclearFeatures & Qcow2Layout.AutoclearBitmaps) == 0 || !V3)
        {
            // Dropped from the header at its next rewrite.
            _bitmapsExtension = null;
            return;
        }

        const int At = 0;
        if (ext.Count == 0 || ext.Count > Qcow2Layout.MaxBitmaps)
            throw Corrupt("nb_bitmaps", At, $"invalid number of bitmaps ({ext.Count})");
        if (ext.DirectorySize == 0 || ext.DirectorySize > Qcow2Layout.MaxBitmapDirectoryBytes)
            throw Corrupt("bitmap_directory_size", At, "bitmap directory size is invalid");
        CheckTable("bitmap_directory_offset", At, ext.DirectoryOffset, ext.DirectorySize, fileLength);
        byte[] dir = new byte[ext.DirectorySize];
        await _file.ReadAsync((long)ext.DirectoryOffset, dir, ct).ConfigureAwait(false);

        var list = new List<StoredBitmap>((int)ext.Count);
        long pos = 0;
        for (uint i = 0; i < ext.Count; i++)
        {
            long entryAt = (long)ext.DirectoryOffset + pos;
            if (pos + Qcow2BitmapDirectoryEntry.Size > dir.Length)
                throw Corrupt("bitmap directory", entryAt, "bitmap directory entry runs past the directory");
            var e = Qcow2BitmapDirectoryEntry.Read(dir.AsSpan((int)pos));
            if (pos + e.TotalSize > dir.Length)
                throw Corrupt("bitmap directory", entryAt, "bitmap directory entry runs past the directory");
            if (e.Type != Qcow2Layout.BitmapTypeDirtyTracking)
                throw Corrupt("bitmap type", entryAt + Qcow2BitmapDirectoryEntry.TypeOffset, $"unsupported bitmap type {e.Type}");
            if (e.GranularityBits is < Qcow2Layout.MinBitmapGranularityBits or > Qcow2Layout.MaxBitmapGranularityBits)
                throw Corrupt("granularity_bits", entryAt + Qcow2BitmapDirectoryEntry.GranularityBitsOffset, $"bitmap granularity 2^{e.GranularityBits} out of range");
            if (e.NameSize == 0 || e.NameSize > Qcow2Layout.MaxBitmapNameBytes)
                throw Corrupt("name_size", entryAt + Qcow2BitmapDirectoryEntry.NameSizeOffset, "bitmap name size is invalid");
            if ((e.Flags & ~Qcow2Layout.BitmapKnownFlags) != 0)
                throw Corrupt("bitmap flags", entryAt + Qcow2BitmapDirectoryEntry.FlagsOffset, $"unknown bitmap flags 0x{e.Flags & ~Qcow2Layout.BitmapKnownFlags:x}");
            if (e.ExtraDataSize != 0 && (e.Flags & Qcow2Layout.BitmapExtraDataCompatible) == 0)
                throw Corrupt("extra_data_size", entryAt + Qcow2BitmapDirectoryEntry.ExtraDataSizeOffset, "bitmap extra data is not understood");
            // A bitmap left in use by a crash after a resize still has its old table: it is inconsistent
            // anyway, and its bits are never read.
            if (e.TableSize != BitmapTableEntries(e.GranularityBits) && (e.Flags & Qcow2Layout.BitmapInUse) == 0)
                throw Corrupt("bitmap_table_size", entryAt + Qcow2BitmapDirectoryEntry.TableSizeOffset, "bitmap table size does not match the image size");
            CheckTable("bitmap_table_offset", entryAt, e.TableOffset, (ulong)e.TableSize * 8, fileLength);
            byte[] extra = dir.AsSpan((int)pos + Qcow2BitmapDirectoryEntry.Size, (int)e.ExtraDataSize).ToArray();
            string name = System.Text.Encoding.UTF8.GetString(dir, (int)(pos + Qcow2BitmapDirectoryEntry.Size + e.ExtraDataSize), e.NameSize);
            if (list.Exists(b => b.Name == name))
                throw Corrupt("bitmap directory", entryAt, $"bitmap name '{name}' is used twice");
            list.Add(new StoredBitmap(name, e.GranularityBits, e.Flags, (long)e.TableOffset, e.TableSize, extra));
            pos += e.TotalSize;
        }

        _storedBitmaps = list;
        _bitmapDirOffset = (long)ext.DirectoryOffset;
        _bitmapDirSize = (long)ext.DirectorySize;

        foreach (var s in list)
        {
            bool inUse = (s.Flags & Qcow2Layout.BitmapInUse) != 0;
            var b = AttachLoadedBitmap(s.Name, 1L << s.GranularityBits, (s.Flags & Qcow2Layout.BitmapAuto) != 0, inUse, ReadOnly);
            // A bitmap left in use may miss writes: its bits are not worth reading.
            if (!inUse)
                await ReadBitmapBitsAsync(s, b, fileLength, ct).ConfigureAwait(false);
        }
    }

    private async ValueTask ReadBitmapBitsAsync(StoredBitmap s, NamedDirtyBitmap b, long fileLength, CancellationToken ct)
    {
        var table = await ReadTableAsync(s.TableOffset, (int)s.TableSize, ct).ConfigureAwait(false);
        byte[] cluster = new byte[_clusterSize];
        for (int i = 0; i < table.Length; i++)
        {
            ulong t = table[i];
            if ((t & Qcow2Layout.BitmapTableReservedMask) != 0)
                throw Corrupt("bitmap table entry", s.TableOffset + (i * 8L), $"bitmap '{s.Name}' has a table entry with reserved bits set");
            long host = (long)(t & Qcow2Layout.OffsetMask);
            if (host == 0)
            {
                if ((t & Qcow2Layout.BitmapTableAllOnes) != 0)
                {
                    cluster.AsSpan().Fill(0xFF);
                    b.Bits.SetBytes((long)i * _clusterSize, cluster);
                }

                continue;
            }

            if ((host & (_clusterSize - 1)) != 0 || host > fileLength - _clusterSize)
                throw Corrupt("bitmap table entry", s.TableOffset + (i * 8L), $"bitmap '{s.Name}' points at 0x{host:x}, outside the file or unaligned");
            await _file.ReadAsync(host, cluster, ct).ConfigureAwait(false);
            b.Bits.SetBytes((long)i * _clusterSize, cluster);
        }
    }

    /// <summary>
    /// A read-write open marks every stored bitmap in use, on disk and flushed, before anything is written:
    /// from here until close, the stored bits are stale. Rewritten in place (the directory's size does not change).
    /// </summary>
    private async ValueTask MarkBitmapsInUseAsync(CancellationToken ct)
    {
        foreach (var b in Bitmaps)
        {
            if (b.Persistent)
                b.ReadOnly = false;
        }

        if (_storedBitmaps.Count == 0)
            return;
        bool changed = false;
        for (int i = 0; i < _storedBitmaps.Count; i++)
        {
            var s = _storedBitmaps[i];
            if ((s.Flags & Qcow2Layout.BitmapInUse) == 0)
            {
                _storedBitmaps[i] = s with { Flags = s.Flags | Qcow2Layout.BitmapInUse };
                changed = true;
            }
        }

        if (!changed)
            return;
        byte[] dir = SerializeDirectory(_storedBitmaps);
        await PreWriteCheckAsync(Qcow2MetadataKinds.BitmapDirectory, _bitmapDirOffset, dir.Length).ConfigureAwait(false);
        await _file.WriteAsync(_bitmapDirOffset, dir, RequestFlags.None, ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
    }

    private static byte[] SerializeDirectory(List<StoredBitmap> list)
    {
        long total = 0;
        var names = new byte[list.Count][];
        for (int i = 0; i < list.Count; i++)
        {
            names[i] = System.Text.Encoding.UTF8.GetBytes(list[i].Name);
            total += (Qcow2BitmapDirectoryEntry.Size + list[i].Extra.Length + names[i].Length + 7) & ~7L;
        }

        byte[] dir = new byte[total];
        int pos = 0;
        for (int i = 0; i < list.Count; i++)
        {
            var s = list[i];
            var e = new Qcow2BitmapDirectoryEntry((ulong)s.TableOffset, s.TableSize, s.Flags, Qcow2Layout.BitmapTypeDirtyTracking,
                s.GranularityBits, (ushort)names[i].Length, (uint)s.Extra.Length);
            e.Write(dir.AsSpan(pos));
            s.Extra.CopyTo(dir, pos + Qcow2BitmapDirectoryEntry.Size);
            names[i].CopyTo(dir, pos + Qcow2BitmapDirectoryEntry.Size + s.Extra.Length);
            pos += (int)e.TotalSize;
        }

        return dir;
    }

    /// <summary>
    /// Writes a new directory to fresh clusters, makes it durable, points the header at it (or drops the
    /// extension when none is left), and queues the old directory's clusters to be freed. Caller holds _meta.
    /// </summary>
    private async ValueTask WriteBitmapDirectoryLockedAsync(List<StoredBitmap> list, CancellationToken ct)
    {
        long offset = 0;
        byte[] dir = SerializeDirectory(list);
        if (dir.Length > Qcow2Layout.MaxBitmapDirectoryBytes)
            throw new BlockException(Errno.ENOSPC, "Not enough space in the bitmap directory");
        if (dir.Length > 0)
        {
            offset = await AllocateClustersLockedAsync((dir.Length + _clusterSize - 1) >> _clusterBits).ConfigureAwait(false);
            await _file.WriteAsync(offset, dir, RequestFlags.None, ct).ConfigureAwait(false);
        }

        // The directory and the refcounts of everything it names reach the disk before the header names it.
        await FlushTablesLockedAsync(ct).ConfigureAwait(false);
        await WriteDirtyRefBlocksAsync().ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);

        long oldOffset = _bitmapDirOffset, oldSize = _bitmapDirSize;
        _bitmapsExtension = list.Count > 0 ? new Qcow2BitmapsExtension((uint)list.Count, (ulong)dir.Length, (ulong)offset) : null;
        ulong autoclear = list.Count > 0 ? _header.AutoclearFeatures | Qcow2Layout.AutoclearBitmaps : _header.AutoclearFeatures & ~Qcow2Layout.AutoclearBitmaps;
        await RewriteHeaderLockedAsync(_header with { AutoclearFeatures = autoclear }, _backingName, _backingFormat, ct).ConfigureAwait(false);
        _storedBitmaps = list;
        _bitmapDirOffset = offset;
        _bitmapDirSize = dir.Length;
        if (oldOffset != 0 && oldSize > 0)
            QueueFree(oldOffset, (oldSize + _clusterSize - 1) >> _clusterBits, FreeReason.Other);
    }

    /// <summary>Queues the clusters of one stored bitmap (its data and its table) to be freed. Caller holds _meta.</summary>
    private async ValueTask FreeBitmapClustersLockedAsync(StoredBitmap s, CancellationToken ct)
    {
        if (s.TableOffset == 0 || s.TableSize == 0)
            return;
        var table = await ReadTableAsync(s.TableOffset, (int)s.TableSize, ct).ConfigureAwait(false);
        foreach (ulong t in table)
        {
            long host = (long)(t & Qcow2Layout.OffsetMask);
            if (host != 0)
                QueueFree(host, 1, FreeReason.Other);
        }

        QueueFree(s.TableOffset, ((s.TableSize * 8L) + _clusterSize - 1) >> _clusterBits, FreeReason.Other);
    }

    /// <summary>Every cluster the stored bitmaps own, for check and for a refcount rebuild.</summary>
    private async ValueTask CountBitmapClustersAsync(Action<long, long> add, CancellationToken ct)
    {
        if (_bitmapDirOffset == 0)
            return;
        add(_bitmapDirOffset, _bitmapDirSize);
        foreach (var s in _storedBitmaps)
        {
            if (s.TableOffset == 0 || s.TableSize == 0)
                continue;
            add(s.TableOffset, s.TableSize * 8L);
            if (s.TableOffset + (s.TableSize * 8L) > _file.Length)
                continue;
            var table = await ReadTableAsync(s.TableOffset, (int)s.TableSize, ct).ConfigureAwait(false);
            foreach (ulong t in table)
            {
                long host = (long)(t & Qcow2Layout.OffsetMask);
                if (host != 0)
                    add(host, _clusterSize);
            }
        }
    }

    /// <summary>
    /// At close of a writable image: every persistent bitmap goes to fresh clusters (clean clusters of bits
    /// take none), with the auto flag as it records and in-use cleared; bitmaps loaded inconsistent keep their
    /// old entry (still in use), so they stay refused until removed. Caller holds _meta.
    /// </summary>
    private async ValueTask StoreBitmapsLockedAsync(CancellationToken ct)
    {
        bool any = _storedBitmaps.Count > 0;
        foreach (var b in Bitmaps)
            any |= b.Persistent;
        if (!any || !V3)
            return;

        var list = new List<StoredBitmap>();
        var replaced = new List<StoredBitmap>();
        byte[] cluster = new byte[_clusterSize];
        foreach (var b in Bitmaps)
        {
            if (!b.Persistent)
                continue;
            var old = _storedBitmaps.Find(s => s.Name == b.Name);
            if (b.Inconsistent && old != null)
            {
                list.Add(old);
                continue;
            }

            int gbits = System.Numerics.BitOperations.Log2((ulong)b.Granularity);
            long entries = BitmapTableEntries(gbits);
            var table = new byte[entries * 8];
            for (long i = 0; i < entries; i++)
            {
                b.Bits.GetBytes(i * _clusterSize, cluster);
                if (!cluster.AsSpan().ContainsAnyExcept((byte)0))
                    continue;
                long host = await AllocateClustersLockedAsync(1).ConfigureAwait(false);
                await _file.WriteAsync(host, cluster, RequestFlags.None, ct).ConfigureAwait(false);
                BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(i * 8)), (ulong)host);
            }

            long tableOffset = 0;
            if (table.Length > 0)
            {
                tableOffset = await AllocateClustersLockedAsync((table.Length + _clusterSize - 1) >> _clusterBits).ConfigureAwait(false);
                await _file.WriteAsync(tableOffset, table, RequestFlags.None, ct).ConfigureAwait(false);
            }

            uint flags = (b.Recording ? Qcow2Layout.BitmapAuto : 0) | (old?.Flags & Qcow2Layout.BitmapExtraDataCompatible ?? 0);
            list.Add(new StoredBitmap(b.Name, (byte)gbits, flags, tableOffset, (uint)entries, old?.Extra ?? []));
            if (old != null)
                replaced.Add(old);
        }

        // Entries with no bitmap left on the node (there should be none: removal drops them at once) go too.
        foreach (var s in _storedBitmaps)
        {
            if (!list.Contains(s) && !replaced.Contains(s))
                replaced.Add(s);
        }

        await WriteBitmapDirectoryLockedAsync(list, ct).ConfigureAwait(false);
        foreach (var s in replaced)
            await FreeBitmapClustersLockedAsync(s, ct).ConfigureAwait(false);
        await FlushMetadataLockedAsync(ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
    }
}
