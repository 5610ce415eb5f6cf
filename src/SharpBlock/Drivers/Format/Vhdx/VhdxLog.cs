using System.Buffers.Binary;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Drivers.Format.Vhdx;

/// <summary>
/// The metadata log: a ring of 4 KiB sectors in the file through which every metadata update goes, so a
/// crash in the middle of one is finished by replaying the log at the next read-write open.
/// </summary>
/// <remarks>
/// We use the log as QEMU does: one entry per update, written at the start of an empty log, made durable,
/// applied in place, made durable, and the log emptied again (the header's log GUID set back to zero). A
/// reader therefore finds at most one sequence of entries; a log other writers left with longer sequences
/// (wrapping around the ring) is searched for its newest valid sequence and replayed whole.
/// </remarks>
internal sealed class VhdxLog(BlockNode file, long offset, long length)
{
    /// <summary>
    /// A log with entries is read into memory to be searched; beyond this the image is refused rather than
    /// allocating what a hostile header asks for (QEMU's own images use 1 MiB logs).
    /// </summary>
    public const long MaxReplayLength = 32 * VhdxLayout.MiB;

    public long Offset { get; } = offset;

    public long Length { get; } = length;

    /// <summary>The next sequence number to write (after the newest one found in the log).</summary>
    public ulong NextSequence { get; private set; } = 1;

    /// <summary>One valid entry of the active sequence: where it starts in the ring, and its header.</summary>
    internal readonly record struct Entry(int Start, VhdxLogEntryHeader Header);

    /// <summary>Finds the newest valid sequence of entries for this log GUID; empty when there is nothing to replay.</summary>
    public async ValueTask<List<Entry>> FindActiveSequenceAsync(Guid logGuid, CancellationToken ct)
    {
        if (Length > MaxReplayLength)
            throw new ImageCorruptException(file.Filename, "log length", VhdxHeader.LogLengthOffset, $"a log of {Length} bytes, named by a log GUID, is larger than the {MaxReplayLength} bytes SharpBlock searches and replays");
        byte[] ring = new byte[Length];
        await file.ReadAsync(Offset, ring, ct).ConfigureAwait(false);
        var entries = FindActiveSequence(ring, logGuid);
        _ring = entries.Count > 0 ? ring : null;
        return entries;
    }

    /// <summary>The log as the search read it, kept for the replay that follows.</summary>
    private byte[]? _ring;

    private List<Entry> FindActiveSequence(byte[] ring, Guid logGuid)
    {
        int sectors = ring.Length / VhdxLayout.LogSectorSize;
        var best = new List<Entry>();
        // Checksums cost the entry's length; a ring of plausible headers with bad checksums could make the
        // search quadratic, so the bytes hashed are capped at a few passes over the ring.
        long budget = 4L * ring.Length;
        for (int s = 0; s < sectors; s++)
        {
            if (!TryEntry(ring, s * VhdxLayout.LogSectorSize, logGuid, 0, ref budget, out var first))
                continue;
            var run = new List<Entry> { first };
            int next = (int)((first.Start + (long)first.Header.EntryLength) % ring.Length);
            while (run.Count < sectors && TryEntry(ring, next, logGuid, run[^1].Header.SequenceNumber + 1, ref budget, out var e))
            {
                run.Add(e);
                next = (int)((e.Start + (long)e.Header.EntryLength) % ring.Length);
            }

            if (best.Count == 0 || run[0].Header.SequenceNumber > best[0].Header.SequenceNumber)
                best = run;
            if (budget <= 0)
                break;
        }

        if (best.Count > 0)
            NextSequence = best[^1].Header.SequenceNumber + 1;
        return best;
    }

    /// <summary>Whether a valid entry starts at <paramref name="start"/>: header, descriptors, data sectors and checksum.</summary>
    private static bool TryEntry(byte[] ring, int start, Guid logGuid, ulong wantSequence, ref long budget, out Entry entry)
    {
        entry = default;
        var h = VhdxLogEntryHeader.Read(ring.AsSpan(start));
        if (h.Signature != VhdxLayout.LogEntrySignature || h.EntryLength == 0 || h.EntryLength > ring.Length
            || h.EntryLength % VhdxLayout.LogSectorSize != 0 || h.SequenceNumber == 0 || h.LogGuid != logGuid
            || (wantSequence != 0 && h.SequenceNumber != wantSequence))
            return false;
        long descSectors = VhdxLogEntryHeader.DescriptorSectors(h.DescriptorCount);
        if (((long)h.DescriptorCount * VhdxLogDescriptor.Size) > h.EntryLength || descSectors * VhdxLayout.LogSectorSize > h.EntryLength)
            return false;
        if (budget <= 0)
            return false;
        budget -= h.EntryLength;
        byte[] whole = Gather(ring, start, (int)h.EntryLength);
        if (!VhdxLayout.ChecksumValid(whole, VhdxLogEntryHeader.ChecksumOffset))
            return false;
        int dataSectors = 0;
        for (int i = 0; i < h.DescriptorCount; i++)
        {
            var d = VhdxLogDescriptor.Read(whole.AsSpan(DescriptorAt(i)));
            if (d.SequenceNumber != h.SequenceNumber || d.FileOffset % VhdxLayout.LogSectorSize != 0)
                return false;
            if (d.Signature == VhdxLayout.LogZeroDescriptorSignature)
            {
                if (d.LeadingBytes % VhdxLayout.LogSectorSize != 0)
                    return false;
            }
            else if (d.Signature == VhdxLayout.LogDataDescriptorSignature)
            {
                dataSectors++;
            }
            else
            {
                return false;
            }
        }

        if ((descSectors + dataSectors) * VhdxLayout.LogSectorSize > h.EntryLength)
            return false;
        entry = new Entry(start, h);
        return true;
    }

    /// <summary>Where descriptor <paramref name="i"/> sits in an entry: after the header in the first sector.</summary>
    private static int DescriptorAt(int i) => VhdxLogEntryHeader.Size + (i * VhdxLogDescriptor.Size);

    /// <summary>Copies an entry out of the ring, which it may wrap around.</summary>
    private static byte[] Gather(byte[] ring, int start, int length)
    {
        byte[] whole = new byte[length];
        int first = Math.Min(length, ring.Length - start);
        ring.AsSpan(start, first).CopyTo(whole);
        ring.AsSpan(0, length - first).CopyTo(whole.AsSpan(first));
        return whole;
    }

    /// <summary>
    /// Writes what the entries of a sequence describe to their places in the file, in order, then makes it
    /// durable. Every offset and length is checked against the file the entries themselves claim.
    /// </summary>
    public async ValueTask ReplayAsync(List<Entry> entries, CancellationToken ct)
    {
        byte[] ring = _ring ?? throw new InvalidOperationException("the log was not searched");
        _ring = null;
        byte[] sector = new byte[VhdxLayout.LogSectorSize];
        foreach (var (start, h) in entries)
        {
            long fileLength = file.Length;
            if (h.FlushedFileOffset > (ulong)fileLength)
                throw new ImageCorruptException(file.Filename, "log entry flushed file offset", Offset + start + VhdxLogEntryHeader.FlushedFileOffsetOffset,
                    $"0x{h.FlushedFileOffset:x} lies past the end of the file ({fileLength} bytes): the image was truncated");
            // An entry may describe a file somewhat longer than a crash left it (blocks allocated past the
            // end), never much longer: a hostile last file offset must not make us zero terabytes.
            long limit = Math.Max(fileLength, (long)Math.Min(h.LastFileOffset, (ulong)(fileLength + VhdxLayout.MaxBlockSize)));
            byte[] whole = Gather(ring, start, (int)h.EntryLength);
            int dataAt = VhdxLogEntryHeader.DescriptorSectors(h.DescriptorCount) * VhdxLayout.LogSectorSize;
            for (int i = 0; i < h.DescriptorCount; i++)
            {
                var d = VhdxLogDescriptor.Read(whole.AsSpan(DescriptorAt(i)));
                ulong bytes = d.Signature == VhdxLayout.LogZeroDescriptorSignature ? d.LeadingBytes : VhdxLayout.LogSectorSize;
                if (d.FileOffset > (ulong)limit || bytes > (ulong)limit - d.FileOffset)
                    throw new ImageCorruptException(file.Filename, "log descriptor file offset", Offset + start + DescriptorAt(i) + VhdxLogDescriptor.FileOffsetOffset,
                        $"0x{d.FileOffset:x} (+{bytes}) lies past the end of the file the log describes ({limit} bytes)");
                if (d.Signature == VhdxLayout.LogZeroDescriptorSignature)
                {
                    await file.WriteZeroesAsync((long)d.FileOffset, (long)bytes, cancellationToken: ct).ConfigureAwait(false);
                    continue;
                }

                var data = whole.AsSpan(dataAt, VhdxLayout.LogSectorSize);
                dataAt += VhdxLayout.LogSectorSize;
                ulong seq = ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(data[4..]) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(data[VhdxLogDescriptor.DataSectorSequenceLowOffset..]);
                if (BinaryPrimitives.ReadUInt32LittleEndian(data) != VhdxLayout.LogDataSectorSignature || seq != d.SequenceNumber)
                    throw new ImageCorruptException(file.Filename, "log data sector", Offset + start + dataAt - VhdxLayout.LogSectorSize, "signature or sequence number does not match its descriptor");
                BinaryPrimitives.WriteUInt64LittleEndian(sector, d.LeadingBytes);
                data.Slice(VhdxLogDescriptor.DataSectorPayloadOffset, VhdxLogDescriptor.DataSectorPayload).CopyTo(sector.AsSpan(8));
                BinaryPrimitives.WriteUInt32LittleEndian(sector.AsSpan(8 + VhdxLogDescriptor.DataSectorPayload), d.TrailingBytes);
                await file.WriteAsync((long)d.FileOffset, sector, cancellationToken: ct).ConfigureAwait(false);
            }

            // The log says how long the file was once the entry's changes were made; grow to it (in MiBs).
            if ((ulong)file.Length < h.LastFileOffset && h.LastFileOffset <= (ulong)limit)
                await file.TruncateAsync(VhdxLayout.RoundUp((long)h.LastFileOffset, VhdxLayout.MiB), ct).ConfigureAwait(false);
        }

        await file.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes one entry at the start of the (empty) log holding the given whole 4 KiB sectors of the file, and
    /// makes it durable. The caller has set the header's log GUID first and applies the sectors after.
    /// </summary>
    public async ValueTask WriteEntryAsync(Guid logGuid, IReadOnlyList<(long FileOffset, byte[] Sector)> sectors, CancellationToken ct)
    {
        int descSectors = VhdxLogEntryHeader.DescriptorSectors((uint)sectors.Count);
        int total = (descSectors + sectors.Count) * VhdxLayout.LogSectorSize;
        if (total > Length)
            throw new BlockException(Errno.ENOSPC, $"A metadata update of {sectors.Count} sectors does not fit the {Length}-byte VHDX log");
        byte[] entry = new byte[total];
        ulong seq = NextSequence++;
        long fileLength = file.Length;
        new VhdxLogEntryHeader
        {
            Signature = VhdxLayout.LogEntrySignature,
            EntryLength = (uint)total,
            Tail = 0,
            SequenceNumber = seq,
            DescriptorCount = (uint)sectors.Count,
            LogGuid = logGuid,
            FlushedFileOffset = (ulong)fileLength,
            LastFileOffset = (ulong)fileLength,
        }.Write(entry);
        for (int i = 0; i < sectors.Count; i++)
        {
            var (at, bytes) = sectors[i];
            new VhdxLogDescriptor
            {
                Signature = VhdxLayout.LogDataDescriptorSignature,
                LeadingBytes = BinaryPrimitives.ReadUInt64LittleEndian(bytes),
                TrailingBytes = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8 + VhdxLogDescriptor.DataSectorPayload)),
                FileOffset = (ulong)at,
                SequenceNumber = seq,
            }.Write(entry.AsSpan(DescriptorAt(i)));
            var data = entry.AsSpan((descSectors + i) * VhdxLayout.LogSectorSize, VhdxLayout.LogSectorSize);
            BinaryPrimitives.WriteUInt32LittleEndian(data, VhdxLayout.LogDataSectorSignature);
            BinaryPrimitives.WriteUInt32LittleEndian(data[4..], (uint)(seq >> 32));
            bytes.AsSpan(8, VhdxLogDescriptor.DataSectorPayload).CopyTo(data[VhdxLogDescriptor.DataSectorPayloadOffset..]);
            BinaryPrimitives.WriteUInt32LittleEndian(data[VhdxLogDescriptor.DataSectorSequenceLowOffset..], (uint)seq);
        }

        VhdxLayout.Seal(entry, VhdxLogEntryHeader.ChecksumOffset);
        await file.WriteAsync(Offset, entry, cancellationToken: ct).ConfigureAwait(false);
        await file.FlushAsync(ct).ConfigureAwait(false);
    }
}
