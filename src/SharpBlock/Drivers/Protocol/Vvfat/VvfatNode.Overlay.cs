using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Protocol.Vvfat;

/// <summary>
/// rw: the guest's writes land in an overlay of whole sectors, in memory; at each flush the volume is read
/// back as the guest left it (<see cref="FatVolumeReader"/>) and the directory is made to match: new and
/// changed files written (through a temporary file renamed into place), removed files and directories
/// deleted, new directories made. The plan is made in full before the directory is touched, so a volume
/// that cannot be mapped back fails the flush and leaves the directory as it was. Before a host file is
/// replaced or deleted, the clusters the original layout reads from it are copied into the overlay, so the
/// disk keeps reading what the guest expects.
/// </summary>
public sealed partial class VvfatNode
{
    private readonly bool _rw;
    private readonly string _dir;
    private readonly Dictionary<long, byte[]> _overlay = [];
    private readonly HashSet<int> _dirtyClusters = [];
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private Dictionary<string, FatServedEntry> _committed;
    private bool _dirty;

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        bool any;
        lock (_overlay)
            any = _overlay.Count > 0;
        if (!any)
        {
            await ReadBaseAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
            return;
        }

        // Runs of sectors the overlay has (copied) and has not (read from the layout).
        while (buffer.Length > 0)
        {
            long sector = offset / Sector;
            int inSector = (int)(offset % Sector);
            int n = Math.Min(buffer.Length, Sector - inSector);
            byte[]? mine = Overlaid(sector);
            if (mine != null)
            {
                mine.AsSpan(inSector, n).CopyTo(buffer.Span);
            }
            else
            {
                long s = sector + 1;
                while (n < buffer.Length && Overlaid(s) == null)
                {
                    n = (int)Math.Min(buffer.Length, n + (long)Sector);
                    s++;
                }

                await ReadBaseAsync(offset, buffer[..n], cancellationToken).ConfigureAwait(false);
            }

            offset += n;
            buffer = buffer[n..];
        }
    }

    private byte[]? Overlaid(long sector)
    {
        lock (_overlay)
            return _overlay.GetValueOrDefault(sector);
    }

    protected override async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
    {
        if (!_rw)
            throw new BlockException(Errno.EPERM, "Image is read-only");
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (data.Length > 0)
            {
                long sector = offset / Sector;
                int inSector = (int)(offset % Sector);
                int n = Math.Min(data.Length, Sector - inSector);
                byte[] s = new byte[Sector];
                if (n < Sector)
                    await ReadCoreAsync(sector * Sector, s, cancellationToken).ConfigureAwait(false);
                data.Span[..n].CopyTo(s.AsSpan(inSector));
                lock (_overlay)
                    _overlay[sector] = s;
                if (sector >= _g.DataStart)
                    _dirtyClusters.Add((int)(2 + ((sector - _g.DataStart) / _g.SectorsPerCluster)));
                _dirty = true;
                offset += n;
                data = data[n..];
            }
        }
        finally
        {
            _writeLock.Release();
        }

        if ((flags & RequestFlags.Fua) != 0)
            await FlushCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async ValueTask FlushCoreAsync(CancellationToken cancellationToken)
    {
        if (!_rw)
            return;
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_dirty)
                await CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Makes the directory what the volume now says. Caller holds the write lock.</summary>
    private async ValueTask CommitAsync(CancellationToken ct)
    {
        var found = await FatVolumeReader.ReadAsync(_g, _boot, (at, buf) => ReadCoreAsync(at, buf, ct)).ConfigureAwait(false);

        // The plan: what to write, delete and create; checked in full before anything changes.
        var writes = new List<(string Rel, FatFoundEntry Entry)>();
        var newDirs = new List<string>();
        foreach (var (rel, f) in found)
        {
            _committed.TryGetValue(rel, out var was);
            if (f.IsDirectory)
            {
                if (was is not { IsDirectory: true })
                    newDirs.Add(rel);
            }
            else if (was == null || was.IsDirectory || was.FirstCluster != f.FirstCluster || was.Size != f.Size || f.Chain.Any(_dirtyClusters.Contains))
            {
                writes.Add((rel, f));
            }
        }

        var gone = _committed.Where(kv => !found.TryGetValue(kv.Key, out var f) || f.IsDirectory != kv.Value.IsDirectory).ToList();
        foreach (var (rel, _) in gone.Where(g => g.Value.IsDirectory))
        {
            // A directory holding things the disk never showed (sockets, links out of the tree) cannot go.
            string host = HostPath(rel);
            if (Directory.Exists(host) && Directory.EnumerateFileSystemEntries(host).Any(e => !IsServedBelow(e, rel)))
                throw new BlockException(Errno.EIO, $"vvfat: cannot write the disk back into the directory: {host} holds files the disk does not show, so it cannot be removed");
        }

        // Keep the original layout readable before any of its host files change.
        foreach (var (rel, _) in writes)
            await PinAsync(HostPath(rel), ct).ConfigureAwait(false);
        foreach (var (rel, was) in gone.Where(g => !g.Value.IsDirectory))
            await PinAsync(was.HostPath, ct).ConfigureAwait(false);

        try
        {
            foreach (var (_, was) in gone.Where(g => !g.Value.IsDirectory))
                System.IO.File.Delete(was.HostPath);
            foreach (var (rel, _) in gone.Where(g => g.Value.IsDirectory).OrderByDescending(g => g.Key.Length))
            {
                if (Directory.Exists(HostPath(rel)))
                    Directory.Delete(HostPath(rel), recursive: false);
            }

            foreach (string rel in newDirs.OrderBy(d => d.Length))
                Directory.CreateDirectory(HostPath(rel));
            foreach (var (rel, f) in writes)
                await WriteHostFileAsync(HostPath(rel), f, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BlockException(Errno.EIO, $"vvfat: writing back into {_dir} failed: {e.Message}");
        }

        _committed = found.ToDictionary(kv => kv.Key, kv => new FatServedEntry(HostPath(kv.Key), kv.Value.FirstCluster, kv.Value.Size, kv.Value.IsDirectory), StringComparer.Ordinal);
        _dirtyClusters.Clear();
        _dirty = false;
    }

    private bool IsServedBelow(string hostEntry, string rel)
    {
        string name = Path.GetFileName(hostEntry);
        return _committed.ContainsKey(rel + name) || _committed.ContainsKey(rel + name + "/");
    }

    private string HostPath(string rel) => Path.Combine(_dir, rel.TrimEnd('/').Replace('/', Path.DirectorySeparatorChar));

    /// <summary>Copies every cluster the original layout reads from <paramref name="hostPath"/> into the overlay.</summary>
    private async ValueTask PinAsync(string hostPath, CancellationToken ct)
    {
        foreach (var e in _tree.Extents)
        {
            if (e.HostPath != hostPath)
                continue;
            long first = _g.DataStart + ((long)(e.FirstCluster - 2) * _g.SectorsPerCluster);
            for (long s = first; s < first + ((long)e.Clusters * _g.SectorsPerCluster); s++)
            {
                if (Overlaid(s) != null)
                    continue;
                byte[] b = new byte[Sector];
                await ReadBaseAsync(s * Sector, b, ct).ConfigureAwait(false);
                lock (_overlay)
                    _overlay[s] = b;
            }
        }
    }

    /// <summary>A file's bytes from its cluster chain, into a temporary file beside it, then renamed over it.</summary>
    private async ValueTask WriteHostFileAsync(string path, FatFoundEntry f, CancellationToken ct)
    {
        string temp = Path.Combine(Path.GetDirectoryName(path)!, "." + Path.GetFileName(path) + ".sharpblock-vvfat");
        await using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous))
        {
            byte[] buf = new byte[_g.ClusterSize];
            long left = f.Size;
            foreach (int c in f.Chain)
            {
                if (left <= 0)
                    break;
                int n = (int)Math.Min(left, _g.ClusterSize);
                await ReadCoreAsync(FatVolumeReader.ClusterOffset(_g, c), buf.AsMemory(0, n), ct).ConfigureAwait(false);
                await fs.WriteAsync(buf.AsMemory(0, n), ct).ConfigureAwait(false);
                left -= n;
            }

            await fs.FlushAsync(ct).ConfigureAwait(false);
        }

        System.IO.File.Move(temp, path, overwrite: true);
        System.IO.File.SetLastWriteTime(path, f.Modified);
    }

    protected override async ValueTask CloseCoreAsync()
    {
        // A last write-back for a guest that never flushed; a failure here has no one left to tell.
        try
        {
            await FlushCoreAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (BlockException)
        {
        }

        _writeLock.Dispose();
    }
}
