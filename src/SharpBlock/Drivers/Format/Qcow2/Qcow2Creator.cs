using System.Buffers.Binary;
using System.Numerics;
using SharpBlock.Drivers.Creation;
using SharpBlock.Drivers.Format.LegacyAes;
using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Creates qcow2 images: header and extensions in cluster 0, then the refcount table, the refcount blocks
/// covering all of that, and the L1 table; preallocation then goes through the driver's own allocator.
/// </summary>
public static class Qcow2Creator
{
    /// <summary>Checks options the way qemu-img does, with its wording.</summary>
    public static void Validate(Qcow2CreateOptions o)
    {
        if (o.ClusterSize < 512 || o.ClusterSize > (2 << 20) || !BitOperations.IsPow2(o.ClusterSize))
            throw new BlockException(Errno.EINVAL, "Cluster size must be a power of two between 512 and 2048k");
        if (o.Compat is not ("0.10" or "1.1" or "v2" or "v3"))
            throw new BlockException(Errno.EINVAL, $"Invalid compatibility level: '{o.Compat}'");
        bool v3 = o.Compat is "1.1" or "v3";
        // blockdev-create spells the version v2/v3 and QEMU's hint then names that option.
        string upgrade = o.Compat is "v2" ? "version=v3" : "compat=1.1";
        if (o.RefcountBits < 1 || o.RefcountBits > 64 || !BitOperations.IsPow2(o.RefcountBits))
            throw new BlockException(Errno.EINVAL, "Refcount width must be a power of two and may not exceed 64 bits");
        if (!v3 && o.RefcountBits != 16)
            throw new BlockException(Errno.EINVAL, $"Different refcount widths than 16 bits require compatibility level 1.1 or above (use {upgrade} or greater)");
        if (!v3 && o.LazyRefcounts)
            throw new BlockException(Errno.EINVAL, $"Lazy refcounts only supported with compatibility level 1.1 and above (use {upgrade} or greater)");
        if (o.Size < 0)
            throw new BlockException(Errno.EINVAL, "Image size must be non-negative");
        if (o.BackingFormat != null && o.BackingFile == null)
            throw new BlockException(Errno.EINVAL, "Backing format cannot be used without backing file");
        if (o.BackingFile != null && System.Text.Encoding.UTF8.GetByteCount(o.BackingFile) > Qcow2Layout.MaxBackingFileName)
            throw new BlockException(Errno.EINVAL, "Backing file name too long");
        if (o.Preallocation != Preallocation.Off && o.BackingFile != null)
            throw new BlockException(Errno.EINVAL, "Backing file and preallocation can only be used at the same time if extended_l2 is on");
    }

    public static async ValueTask CreateAsync(string path, Qcow2CreateOptions o, CancellationToken cancellationToken = default)
    {
        Validate(o);
        bool v3 = o.Compat is "1.1" or "v3";
        int cb = BitOperations.Log2((uint)o.ClusterSize);
        int cs = o.ClusterSize;
        int refOrder = BitOperations.Log2((uint)o.RefcountBits);
        long size = (o.Size + 511) & ~511L;
        long l2Coverage = 1L << (cb + cb - 3);
        long l1Entries = (size + l2Coverage - 1) / l2Coverage;
        if (l1Entries * 8 > Qcow2Layout.MaxL1Bytes)
            throw new BlockException(Errno.EFBIG, "Image size is too large for this cluster size");
        long l1Clusters = ((l1Entries * 8) + cs - 1) / cs;
        long rbEntries = 1L << (cb + 3 - refOrder);
        long t = 1, b = 1;
        while (true)
        {
            long total = 1 + t + b + l1Clusters;
            long nb = (total + rbEntries - 1) / rbEntries;
            long nt = ((nb * 8) + cs - 1) / cs;
            if (nb == b && nt == t)
                break;
            b = nb;
            t = nt;
        }

        long tableOffset = (long)cs;
        long blocksOffset = tableOffset + (t * cs);
        long l1Offset = l1Entries > 0 ? blocksOffset + (b * cs) : 0;
        long totalClusters = 1 + t + b + l1Clusters;

        byte[] header = new byte[cs];
        var h = new Qcow2Header
        {
            Magic = Qcow2Layout.Magic,
            Version = v3 ? 3u : 2u,
            ClusterBits = (uint)cb,
            Size64 = (ulong)size,
            CryptMethod = o.Encrypted ? LegacyAesCipher.MethodAes : LegacyAesCipher.MethodNone,
            L1Size = (uint)l1Entries,
            L1TableOffset = (ulong)l1Offset,
            RefcountTableOffset = (ulong)tableOffset,
            RefcountTableClusters = (uint)t,
            CompatibleFeatures = o.LazyRefcounts ? Qcow2Layout.CompatLazyRefcounts : 0,
            RefcountOrder = (uint)refOrder,
            HeaderLength = v3 ? (uint)Qcow2Layout.CurrentHeaderSize : Qcow2Layout.V2HeaderSize,
        };
        int pos = h.Size;
        if (o.BackingFormat != null)
        {
            byte[] fmt = System.Text.Encoding.UTF8.GetBytes(o.BackingFormat);
            new Qcow2HeaderExtension(Qcow2Layout.ExtBackingFormat, (uint)fmt.Length).Write(header.AsSpan(pos));
            fmt.CopyTo(header, pos + Qcow2HeaderExtension.Size);
            pos += (int)new Qcow2HeaderExtension(Qcow2Layout.ExtBackingFormat, (uint)fmt.Length).TotalSize;
        }

        var names = Qcow2FeatureName.Standard;
        int tableLen = names.Count * Qcow2FeatureName.Size;
        if (pos + Qcow2HeaderExtension.Size + tableLen + Qcow2HeaderExtension.Size + 1024 <= cs)
        {
            new Qcow2HeaderExtension(Qcow2Layout.ExtFeatureNameTable, (uint)tableLen).Write(header.AsSpan(pos));
            pos += Qcow2HeaderExtension.Size;
            foreach (var f in names)
            {
                f.Write(header.AsSpan(pos));
                pos += Qcow2FeatureName.Size;
            }
        }

        new Qcow2HeaderExtension(Qcow2Layout.ExtEnd, 0).Write(header.AsSpan(pos));
        pos += Qcow2HeaderExtension.Size;
        if (o.BackingFile != null)
        {
            byte[] name = System.Text.Encoding.UTF8.GetBytes(o.BackingFile);
            if (pos + name.Length > cs)
                throw new BlockException(Errno.EINVAL, "Backing file name does not fit in the header cluster");
            name.CopyTo(header, pos);
            h = h with { BackingFileOffset = (ulong)pos, BackingFileSize = (uint)name.Length };
        }

        h.Write(header);

        byte[] rest = new byte[(totalClusters - 1) * cs];
        for (long i = 0; i < b; i++)
            BinaryPrimitives.WriteUInt64BigEndian(rest.AsSpan((int)(i * 8)), (ulong)(blocksOffset + (i * cs)));
        for (long c = 0; c < totalClusters; c++)
        {
            long bi = c / rbEntries;
            var block = rest.AsSpan((int)(blocksOffset - cs + (bi * cs)), cs);
            Qcow2Refcount.Set(block, refOrder, (int)(c % rbEntries), 1);
        }

        using (var fs = ImageFiles.Create(path))
        {
            await fs.WriteAsync(header, cancellationToken).ConfigureAwait(false);
            await fs.WriteAsync(rest, cancellationToken).ConfigureAwait(false);
            await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        if (o.Preallocation != Preallocation.Off)
        {
            var settings = NodeSettings.Default;
            var file = FileNode.Open(path, settings, HostFileProbe.DriverFor(path));
            var node = await Qcow2Node.OpenAsync(file, settings, cancellationToken).ConfigureAwait(false);
            try
            {
                await node.PreallocateAsync(o.Preallocation, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                await node.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
