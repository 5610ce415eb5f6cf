using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Drivers.Format.Qcow2;

public sealed partial class Qcow2Node : IBackingFileFormat
{
    /// <summary>
    /// Rewrites the header cluster with a new backing file name and format: the fixed header, then the
    /// extensions (backing format replaced, every other one kept byte for byte), the end marker, and the
    /// name after them, all inside the first cluster as the format requires.
    /// </summary>
    public async ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat, CancellationToken cancellationToken = default)
    {
        if (ReadOnly)
            throw new BlockException(Errno.EPERM, $"Image '{FileName}' is read-only");
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await RewriteHeaderLockedAsync(_header, backingFile, backingFile != null ? backingFormat : null, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>
    /// Writes a new header cluster: the fixed header h, the extensions (backing format replaced, every other
    /// one kept byte for byte), the end marker, and the backing name after them, all inside the first cluster
    /// as the format requires. Caller holds the metadata lock.
    /// </summary>
    private async ValueTask RewriteHeaderLockedAsync(Qcow2Header h, string? backingFile, string? backingFormat, CancellationToken cancellationToken)
    {
        byte[] first = new byte[_clusterSize];
        await _file.ReadAsync(0, first, cancellationToken).ConfigureAwait(false);
        var old = _header;
        int pos = old.Version >= 3 ? (int)old.HeaderLength : Qcow2Layout.V2HeaderSize;
        int end = old.BackingFileOffset != 0 && old.BackingFileOffset < (ulong)first.Length ? (int)old.BackingFileOffset : first.Length;
        var kept = new List<byte[]>();
        while (pos + Qcow2HeaderExtension.Size <= end)
        {
            var ext = Qcow2HeaderExtension.Read(first.AsSpan(pos));
            if (ext.Type == Qcow2Layout.ExtEnd || ext.TotalSize > end - pos)
                break;
            // Version 2 has no feature bits, so a feature name table would describe nothing.
            // The bitmaps extension is written from the directory we keep, whatever the old one said.
            bool stale = ext.Type == Qcow2Layout.ExtBackingFormat || ext.Type == Qcow2Layout.ExtBitmaps
                || (ext.Type == Qcow2Layout.ExtFeatureNameTable && h.Version < 3);
            if (!stale)
                kept.Add(first.AsSpan(pos, (int)ext.TotalSize).ToArray());
            pos += (int)ext.TotalSize;
        }

        byte[] fmt = backingFile != null && backingFormat != null ? System.Text.Encoding.UTF8.GetBytes(backingFormat) : [];
        byte[] name = backingFile != null ? System.Text.Encoding.UTF8.GetBytes(backingFile) : [];
        if (name.Length > Qcow2Layout.MaxBackingFileName)
            throw new BlockException(Errno.EINVAL, "Backing file name too long");

        byte[] header = new byte[_clusterSize];
        int at = h.Version >= 3 ? (int)h.HeaderLength : Qcow2Layout.V2HeaderSize;
        if (fmt.Length > 0)
        {
            var ext = new Qcow2HeaderExtension(Qcow2Layout.ExtBackingFormat, (uint)fmt.Length);
            if (at + ext.TotalSize > header.Length)
                throw new BlockException(Errno.ENOSPC, "Backing format does not fit in the header cluster");
            ext.Write(header.AsSpan(at));
            fmt.CopyTo(header.AsSpan(at + Qcow2HeaderExtension.Size));
            at += (int)ext.TotalSize;
        }

        if (_bitmapsExtension is { } bitmaps && h.Version >= 3)
        {
            var ext = new Qcow2HeaderExtension(Qcow2Layout.ExtBitmaps, Qcow2BitmapsExtension.Size);
            if (at + ext.TotalSize > header.Length)
                throw new BlockException(Errno.ENOSPC, "Header extensions do not fit in the header cluster");
            ext.Write(header.AsSpan(at));
            bitmaps.Write(header.AsSpan(at + Qcow2HeaderExtension.Size));
            at += (int)ext.TotalSize;
        }

        foreach (var k in kept)
        {
            if (at + k.Length > header.Length)
                throw new BlockException(Errno.ENOSPC, "Header extensions do not fit in the header cluster");
            k.CopyTo(header.AsSpan(at));
            at += k.Length;
        }

        // End-of-extensions marker: eight zero bytes, already zero in the buffer.
        at += Qcow2HeaderExtension.Size;
        if (at + name.Length > header.Length)
            throw new BlockException(Errno.ENOSPC, "Backing file name does not fit in the header cluster");
        name.CopyTo(header.AsSpan(at));
        var nh = h with { BackingFileOffset = name.Length > 0 ? (ulong)at : 0, BackingFileSize = (uint)name.Length };
        nh.Write(header);
        // One write of the whole header cluster (no stale bytes of a longer old header or extension area
        // survive), then a flush, before anything relies on the new header.
        await _file.WriteAsync(0, header, Io.RequestFlags.None, cancellationToken).ConfigureAwait(false);
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        _header = nh;
        _backingName = backingFile;
        _backingFormat = fmt.Length > 0 ? backingFormat : null;
    }
}
