using System.Security.Cryptography;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>The descriptor kept up to date: a new CID on the first write after each open, and the parent's name and CID.</summary>
public sealed partial class VmdkNode : IBackingFileFormat
{
    /// <summary>
    /// Children made on this image recorded its CID as their parentCID; a new CID on the first write tells them
    /// the content they were made on has changed, as QEMU and VMware do it.
    /// </summary>
    private async ValueTask UpdateCidOnceAsync(CancellationToken ct)
    {
        if (Volatile.Read(ref _cidUpdated))
            return;
        await _meta.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_cidUpdated)
                return;
            uint cid = (uint)RandomNumberGenerator.GetInt32(int.MinValue, int.MaxValue);
            _descriptor.SetCid(cid);
            await WriteDescriptorLockedAsync(ct).ConfigureAwait(false);
            Cid = cid;
            _cidUpdated = true;
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>
    /// Writes the descriptor back: in its area of a sparse extent (it must fit), or as the whole text file, padded
    /// with NULs over what was there so no stale tail of a longer old text survives. Flushed before it is relied on.
    /// </summary>
    private async ValueTask WriteDescriptorLockedAsync(CancellationToken ct)
    {
        byte[] text = _descriptor.ToBytes();
        // A descriptor file is padded over its old text (we read at most 1 MiB of it), at least QEMU's 20 sectors.
        int area = _embeddedDescriptor ? _descriptorArea
            : (int)Math.Max(Math.Max(VmdkLayout.DescriptorAreaBytes, Math.Min(_file.Length, VmdkLayout.MaxDescriptorBytes)), text.Length);
        if (text.Length > area)
            throw new BlockException(Errno.ENOSPC, $"The descriptor of '{Filename}' does not fit in its {area}-byte area");
        byte[] buf = new byte[area];
        text.CopyTo(buf, 0);
        await _file.WriteAsync(_descriptorOffset, buf, RequestFlags.None, ct).ConfigureAwait(false);
        await _file.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Points the image at another parent: its name as the hint and its CID as our parentCID (none: ffffffff).</summary>
    public async ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat, CancellationToken cancellationToken = default)
    {
        if (ReadOnly)
            throw new BlockException(Errno.EPERM, $"Image '{Filename}' is read-only");
        if (backingFormat != null && backingFormat != "vmdk")
            throw new BlockException(Errno.EINVAL, "backing_file must be a vmdk image");
        uint parentCid = VmdkLayout.NoParentCid;
        if (backingFile != null && Backing is VmdkNode parent && parent.Filename == BackingFiles.Resolve(Filename, backingFile))
            parentCid = parent.Cid;
        else if (backingFile != null)
            parentCid = await ReadCidOfAsync(BackingFiles.Resolve(Filename, backingFile), cancellationToken).ConfigureAwait(false);
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _descriptor.SetParentFileNameHint(backingFile);
            _descriptor.SetParentCid(parentCid);
            await WriteDescriptorLockedAsync(cancellationToken).ConfigureAwait(false);
            _backingName = backingFile;
            ParentCid = parentCid;
            _cidChecked = false;
        }
        finally
        {
            _meta.Release();
        }
    }

    /// <summary>The CID of a VMDK image on disk (for a new child's parentCID); opens it read-only and closes it again.</summary>
    internal static async ValueTask<uint> ReadCidOfAsync(string path, CancellationToken ct)
    {
        await using var graph = new BlockGraph();
        var node = await graph.AddAsync(ImageFormats.ImageOptions(path, "vmdk", readOnly: true, nodeName: "vmdk-parent"), ct).ConfigureAwait(false);
        return node is VmdkNode v ? v.Cid : throw new BlockException(Errno.EINVAL, "backing_file must be a vmdk image");
    }
}
