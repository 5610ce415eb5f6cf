using System.Buffers.Binary;
using System.Globalization;
using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Internal snapshots: a snapshot is a copy of the L1 table plus one more reference on every L2 table and
/// data cluster it reaches, so later writes copy those clusters instead of changing them.
/// </summary>
public sealed partial class Qcow2Node
{
    /// <summary>Takes a snapshot of the current state (qemu-img snapshot -c).</summary>
    public async ValueTask<Qcow2Snapshot> CreateSnapshotAsync(string name, CancellationToken cancellationToken = default)
    {
        CheckWritableForSnapshots();
        await using (await DrainAsync().ConfigureAwait(false))
        {
            await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (_snapshots.Count >= Qcow2Layout.MaxSnapshots)
                    throw new BlockException(Errno.EFBIG, "Too many snapshots");
                await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
                long l1Bytes = _l1.Length * 8L;
                long l1Copy = 0;
                if (l1Bytes > 0)
                {
                    l1Copy = await AllocateClustersLockedAsync((l1Bytes + _clusterSize - 1) >> _clusterBits).ConfigureAwait(false);
                    byte[] buf = new byte[l1Bytes];
                    for (int i = 0; i < _l1.Length; i++)
                        BinaryPrimitives.WriteUInt64BigEndian(buf.AsSpan(i * 8), _l1[i] & ~Qcow2Layout.OflagCopied);
                    await _file.WriteAsync(l1Copy, buf, RequestFlags.None, cancellationToken).ConfigureAwait(false);
                }

                await AddTreeReferencesLockedAsync(_l1).ConfigureAwait(false);
                await FixCopiedFlagsLockedAsync().ConfigureAwait(false);
                // Every new reference must be durable before the snapshot table that relies on it.
                await FlushTablesLockedAsync(cancellationToken).ConfigureAwait(false);
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);

                long next = 1;
                foreach (var s in _snapshots)
                {
                    if (long.TryParse(s.Id, NumberStyles.None, CultureInfo.InvariantCulture, out long id) && id >= next)
                        next = id + 1;
                }

                var now = DateTimeOffset.UtcNow;
                long unixNs = (now - DateTimeOffset.UnixEpoch).Ticks * 100;
                byte[] extra = new byte[24];
                BinaryPrimitives.WriteInt64BigEndian(extra.AsSpan(Qcow2SnapshotHeader.ExtraDiskSize), _size);
                var snap = new Qcow2Snapshot
                {
                    Id = next.ToString(CultureInfo.InvariantCulture),
                    Name = name,
                    L1TableOffset = l1Copy,
                    L1Size = _l1.Length,
                    DateSec = unixNs / 1_000_000_000,
                    DateNsec = unixNs % 1_000_000_000,
                    DiskSize = _size,
                    Icount = 0,
                    ExtraData = extra,
                };
                var list = new List<Qcow2Snapshot>(_snapshots) { snap };
                await WriteSnapshotTableLockedAsync(list, cancellationToken).ConfigureAwait(false);
                return snap;
            }
            finally
            {
                _meta.Release();
            }
        }
    }

    /// <summary>Deletes a snapshot by id or name (qemu-img snapshot -d).</summary>
    public async ValueTask<Qcow2Snapshot> DeleteSnapshotAsync(string idOrName, CancellationToken cancellationToken = default)
    {
        CheckWritableForSnapshots();
        await using (await DrainAsync().ConfigureAwait(false))
        {
            await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var snap = FindSnapshot(idOrName) ?? throw new BlockException(Errno.ENOENT, $"Can't find the snapshot");
                await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
                var list = new List<Qcow2Snapshot>(_snapshots);
                list.Remove(snap);
                // Unlink first: once the table no longer names the snapshot, dropping its references is safe.
                await WriteSnapshotTableLockedAsync(list, cancellationToken).ConfigureAwait(false);
                var l1 = await ReadRawTableAsync(snap.L1TableOffset, snap.L1Size, cancellationToken).ConfigureAwait(false);
                await DropTreeReferencesLockedAsync(l1, FreeReason.Snapshot).ConfigureAwait(false);
                if (snap.L1Size > 0)
                    QueueFree(snap.L1TableOffset, ((snap.L1Size * 8L) + _clusterSize - 1) >> _clusterBits, FreeReason.Snapshot);
                await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
                await FixCopiedFlagsLockedAsync().ConfigureAwait(false);
                await FlushTablesLockedAsync(cancellationToken).ConfigureAwait(false);
                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
                return snap;
            }
            finally
            {
                _meta.Release();
            }
        }
    }

    /// <summary>Makes the image's current state that of a snapshot (qemu-img snapshot -a).</summary>
    public async ValueTask RevertToSnapshotAsync(string idOrName, CancellationToken cancellationToken = default)
    {
        CheckWritableForSnapshots();
        await using (await DrainAsync().ConfigureAwait(false))
        {
            await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var snap = FindSnapshot(idOrName) ?? throw new BlockException(Errno.ENOENT, $"Can't find the snapshot");
                await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
                var snapL1 = await ReadRawTableAsync(snap.L1TableOffset, snap.L1Size, cancellationToken).ConfigureAwait(false);
                if (snapL1.Length > _l1.Length)
                    await GrowL1LockedAsync(snapL1.Length, cancellationToken).ConfigureAwait(false);
                await AddTreeReferencesLockedAsync(snapL1).ConfigureAwait(false);
                var old = (ulong[])_l1.Clone();
                Array.Clear(_l1);
                Array.Copy(snapL1, _l1, snapL1.Length);
                _l1Dirty = true;
                // New references, then the L1 that uses them; only then drop the old tree's references.
                await FlushTablesLockedAsync(cancellationToken).ConfigureAwait(false);
                await DropTreeReferencesLockedAsync(old, FreeReason.Snapshot).ConfigureAwait(false);
                await FlushMetadataLockedAsync(cancellationToken).ConfigureAwait(false);
                await FixCopiedFlagsLockedAsync().ConfigureAwait(false);
                await FlushTablesLockedAsync(cancellationToken).ConfigureAwait(false);
                if (snap.DiskSize > 0 && snap.DiskSize != _size && L1EntriesFor(snap.DiskSize) <= _l1.Length)
                {
                    await WriteHeaderFieldAsync(Qcow2Header.SizeOffset, (ulong)snap.DiskSize, cancellationToken).ConfigureAwait(false);
                    _header = _header with { Size64 = (ulong)snap.DiskSize };
                    Volatile.Write(ref _size, snap.DiskSize);
                }

                await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _meta.Release();
            }
        }
    }

    /// <summary>
    /// Shows a snapshot instead of the current state on a read-only node, without changing the image
    /// (qemu-img convert -l / measure -l). Reads then go through the snapshot's tables; the virtual size
    /// stays the image's, as qemu's does, and what lies past the snapshot's tables reads as unallocated.
    /// </summary>
    public async ValueTask LoadSnapshotTemporarilyAsync(string idOrName, CancellationToken cancellationToken = default)
    {
        if (!ReadOnly)
            throw new BlockException(Errno.EINVAL, "Snapshots can only be loaded temporarily into read-only images");
        await using (await DrainAsync().ConfigureAwait(false))
        {
            await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var snap = FindSnapshot(idOrName) ?? throw new BlockException(Errno.ENOENT, "Can't find snapshot");
                // The table the lookups see changes; L2 tables stay cached by offset and are shared anyway.
                _l1 = await ReadRawTableAsync(snap.L1TableOffset, snap.L1Size, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _meta.Release();
            }
        }
    }

    private void CheckWritableForSnapshots()
    {
        if (ReadOnly)
            throw new BlockException(Errno.EPERM, $"Node '{NodeName}' is read-only");
        RefuseWritesIfCorrupt();
    }

    private Qcow2Snapshot? FindSnapshot(string idOrName)
    {
        foreach (var s in _snapshots)
        {
            if (s.Id == idOrName)
                return s;
        }

        foreach (var s in _snapshots)
        {
            if (s.Name == idOrName)
                return s;
        }

        return null;
    }

    private async ValueTask AddTreeReferencesLockedAsync(ulong[] l1)
    {
        for (int i = 0; i < l1.Length; i++)
        {
            long l2 = (long)(l1[i] & Qcow2Layout.OffsetMask);
            if (l2 == 0)
                continue;
            await UpdateRefcountLockedAsync(l2 >> _clusterBits, 1).ConfigureAwait(false);
            var table = await LoadL2Async(l2, "snapshot L1 entry", i * 8L).ConfigureAwait(false);
            byte[] copy = (byte[])table.Data.Clone();
            for (int j = 0; j < L2Entries; j++)
            {
                var e = new Qcow2L2Entry(GetEntry(copy, j));
                switch (e.Kind(V3))
                {
                    case Qcow2ClusterKind.Normal:
                    case Qcow2ClusterKind.ZeroAllocated:
                        await UpdateRefcountLockedAsync(e.HostOffset >> _clusterBits, 1).ConfigureAwait(false);
                        break;
                    case Qcow2ClusterKind.Compressed:
                        {
                            long off = e.CompressedOffset(_clusterBits) & ~511L;
                            long end = off + ((long)e.CompressedSectors(_clusterBits) * 512) - 1;
                            for (long c = off >> _clusterBits; c <= end >> _clusterBits; c++)
                                await UpdateRefcountLockedAsync(c, 1).ConfigureAwait(false);
                            break;
                        }
                }
            }
        }
    }

    private async ValueTask DropTreeReferencesLockedAsync(ulong[] l1, FreeReason reason)
    {
        for (int i = 0; i < l1.Length; i++)
        {
            long l2 = (long)(l1[i] & Qcow2Layout.OffsetMask);
            if (l2 == 0)
                continue;
            var table = await LoadL2Async(l2, "snapshot L1 entry", i * 8L).ConfigureAwait(false);
            for (int j = 0; j < L2Entries; j++)
                ReleaseEntry(new Qcow2L2Entry(GetEntry(table.Data, j)), reason);
            QueueFree(l2, 1, reason);
        }
    }

    /// <summary>Writes the whole snapshot table to fresh clusters and switches the header to it.</summary>
    private async ValueTask WriteSnapshotTableLockedAsync(List<Qcow2Snapshot> list, CancellationToken ct)
    {
        var entries = new List<byte[]>(list.Count);
        long total = 0;
        foreach (var s in list)
        {
            byte[] id = System.Text.Encoding.UTF8.GetBytes(s.Id);
            byte[] name = System.Text.Encoding.UTF8.GetBytes(s.Name);
            byte[] extra = s.ExtraData;
            if (V3 && extra.Length < 16)
            {
                extra = new byte[16];
                s.ExtraData.CopyTo(extra, 0);
                BinaryPrimitives.WriteInt64BigEndian(extra.AsSpan(Qcow2SnapshotHeader.ExtraDiskSize), s.DiskSize);
            }

            int len = (int)((Qcow2SnapshotHeader.Size + extra.Length + id.Length + name.Length + 7) & ~7L);
            byte[] e = new byte[len];
            new Qcow2SnapshotHeader
            {
                L1TableOffset = (ulong)s.L1TableOffset,
                L1Size = (uint)s.L1Size,
                IdSize = (ushort)id.Length,
                NameSize = (ushort)name.Length,
                DateSec = (uint)s.DateSec,
                DateNsec = (uint)s.DateNsec,
                VmClockNsec = (ulong)s.VmClockNsec,
                VmStateSize = (uint)Math.Min(s.VmStateSize, uint.MaxValue),
                ExtraDataSize = (uint)extra.Length,
            }.Write(e);
            extra.CopyTo(e, Qcow2SnapshotHeader.Size);
            id.CopyTo(e, Qcow2SnapshotHeader.Size + extra.Length);
            name.CopyTo(e, Qcow2SnapshotHeader.Size + extra.Length + id.Length);
            entries.Add(e);
            total += len;
        }

        long offset = 0;
        if (total > 0)
        {
            offset = await AllocateClustersLockedAsync((total + _clusterSize - 1) >> _clusterBits).ConfigureAwait(false);
            byte[] table = new byte[total];
            int pos = 0;
            foreach (var e in entries)
            {
                e.CopyTo(table, pos);
                pos += e.Length;
            }

            await _file.WriteAsync(offset, table, RequestFlags.None, ct).ConfigureAwait(false);
        }

        await FlushTablesLockedAsync(ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        byte[] hdr = new byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(hdr, (uint)list.Count);
        BinaryPrimitives.WriteUInt64BigEndian(hdr.AsSpan(4), (ulong)offset);
        await _file.WriteAsync(Qcow2Header.NbSnapshotsOffset, hdr, RequestFlags.None, ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
        long oldOffset = (long)_header.SnapshotsOffset;
        long oldBytes = SnapshotTableBytes();
        if (_snapshots.Count > 0 && oldOffset != 0)
            QueueFree(oldOffset, (oldBytes + _clusterSize - 1) >> _clusterBits, FreeReason.Snapshot);
        _header = _header with { NbSnapshots = (uint)list.Count, SnapshotsOffset = (ulong)offset };
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i].ExtraData.Length < 16 && V3)
                list[i] = list[i] with { ExtraData = entries[i].AsSpan(Qcow2SnapshotHeader.Size, 16).ToArray() };
        }

        _snapshots = list;
    }
}
