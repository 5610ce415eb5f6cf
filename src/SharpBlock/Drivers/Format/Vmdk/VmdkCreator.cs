using System.Globalization;
using System.Security.Cryptography;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>
/// Creates VMDK images as qemu-img does: sparse extents with a header, an embedded descriptor area, both grain
/// directories and all their (empty) grain tables preallocated; flat extents as sparse files; and the
/// descriptor, embedded for the monolithic sparse kinds, a text file of its own otherwise.
/// </summary>
public static class VmdkCreator
{
    private static readonly string[] AdapterTypes = ["ide", "buslogic", "lsilogic", "legacyESX"];

    /// <summary>qemu-img's refusals, in its order and words.</summary>
    public static void Validate(VmdkCreateOptions o)
    {
        if (o.Compat6 && o.HwVersion != null)
            throw new BlockException(Errno.EINVAL, "compat6 cannot be enabled with hwversion set");
        if (Array.IndexOf(AdapterTypes, o.AdapterType) < 0)
            throw new BlockException(Errno.EINVAL, $"invalid parameter value: {o.AdapterType}");
        if (o.Size < 0)
            throw new BlockException(Errno.EINVAL, "Image size must be non-negative");
        if (o.Flat && o.BackingFile != null)
            throw new BlockException(Errno.EINVAL, "Flat image can't have backing file");
        if (o.Flat && o.ZeroedGrain)
            throw new BlockException(Errno.EINVAL, "Flat image can't enable zeroed grain");
        if (o.BackingFormat != null && o.BackingFormat != "vmdk")
            throw new BlockException(Errno.EINVAL, "backing_file must be a vmdk image");
    }

    public static async ValueTask CreateAsync(string path, VmdkCreateOptions o, CancellationToken cancellationToken = default)
    {
        Validate(o);
        uint parentCid = VmdkLayout.NoParentCid;
        if (o.BackingFile != null)
            parentCid = await VmdkNode.ReadCidOfAsync(BackingFiles.Resolve(path, o.BackingFile), cancellationToken).ConfigureAwait(false);
        long sectors = (o.Size + VmdkLayout.SectorSize - 1) / VmdkLayout.SectorSize;
        string dir = Path.GetDirectoryName(path) ?? "";
        string baseName = Path.GetFileName(path);
        int dot = baseName.LastIndexOf('.');
        string prefix = dot >= 0 ? baseName[..dot] : baseName;
        string postfix = dot >= 0 ? baseName[dot..] : "";
        var lines = new List<string>();
        var ci = CultureInfo.InvariantCulture;
        bool monolithicSparse = o.Subformat is VmdkSubformat.MonolithicSparse or VmdkSubformat.StreamOptimized;
        bool compressed = o.Subformat == VmdkSubformat.StreamOptimized;
        if (monolithicSparse)
        {
            await WriteSparseExtentAsync(path, sectors, compressed, o.ZeroedGrain, cancellationToken).ConfigureAwait(false);
            lines.Add(string.Create(ci, $"RW {sectors} SPARSE \"{baseName}\""));
        }
        else
        {
            long extentSectors = o.Split ? VmdkLayout.SplitExtentSectors : Math.Max(sectors, 1);
            int index = 1;
            for (long done = 0; done < sectors || (done == 0 && index == 1); index++)
            {
                long n = Math.Min(extentSectors, sectors - done);
                string name = o.Subformat switch
                {
                    VmdkSubformat.MonolithicFlat => $"{prefix}-flat{postfix}",
                    VmdkSubformat.TwoGbMaxExtentFlat => string.Create(ci, $"{prefix}-f{index:000}{postfix}"),
                    _ => string.Create(ci, $"{prefix}-s{index:000}{postfix}"),
                };
                string extentPath = Path.Combine(dir, name);
                if (o.Flat)
                {
                    using var fs = ImageFiles.Create(extentPath);
                    fs.SetLength(n * VmdkLayout.SectorSize);
                    lines.Add(string.Create(ci, $"RW {n} FLAT \"{name}\" 0"));
                }
                else
                {
                    await WriteSparseExtentAsync(extentPath, n, false, o.ZeroedGrain, cancellationToken).ConfigureAwait(false);
                    lines.Add(string.Create(ci, $"RW {n} SPARSE \"{name}\""));
                }

                done += n;
                if (n == 0)
                    break;
            }
        }

        string hw = o.Compat6 ? "6" : o.HwVersion ?? "4";
        uint cid = (uint)RandomNumberGenerator.GetInt32(int.MinValue, int.MaxValue);
        string text = VmdkDescriptor.Create(cid, parentCid, VmdkCreateOptions.Name(o.Subformat), o.BackingFile, lines, hw, sectors * VmdkLayout.SectorSize,
            o.AdapterType, o.ToolsVersion);
        byte[] bytes = System.Text.Encoding.Latin1.GetBytes(text);
        if (monolithicSparse)
        {
            if (bytes.Length > VmdkLayout.DefaultDescriptorSectors * VmdkLayout.SectorSize)
                throw new BlockException(Errno.EINVAL, "The descriptor does not fit in its area");
            using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
            fs.Position = VmdkLayout.DefaultDescriptorSector * VmdkLayout.SectorSize;
            await fs.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
            await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            using var fs = ImageFiles.Create(path);
            await fs.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
            await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// One sparse extent file: the header, room for a 20-sector descriptor, the redundant GD and its tables,
    /// the primary GD and its tables, then grains from a grain boundary on (qemu-img's layout, sector for sector).
    /// </summary>
    private static async ValueTask WriteSparseExtentAsync(string path, long capacity, bool compressed, bool zeroedGrain, CancellationToken ct)
    {
        long grainSectors = VmdkLayout.DefaultGrainSectors;
        int gtes = VmdkLayout.DefaultGtesPerGt;
        long grains = (capacity + grainSectors - 1) / grainSectors;
        long gtSectors = (gtes * 4L + VmdkLayout.SectorSize - 1) / VmdkLayout.SectorSize;
        long gtCount = (grains + gtes - 1) / gtes;
        long gdSectors = (gtCount * 4 + VmdkLayout.SectorSize - 1) / VmdkLayout.SectorSize;
        long rgd = VmdkLayout.DefaultDescriptorSector + VmdkLayout.DefaultDescriptorSectors;
        long gd = rgd + gdSectors + (gtSectors * gtCount);
        long grainOffset = (gd + gdSectors + (gtSectors * gtCount) + grainSectors - 1) / grainSectors * grainSectors;
        if (gd + gdSectors + (gtSectors * gtCount) > VmdkLayout.MaxExtentSectors)
            throw new BlockException(Errno.EFBIG, "Image size is too large for a VMDK sparse extent");
        var h = new VmdkSparseHeader
        {
            Magic = VmdkLayout.Magic,
            Version = compressed ? 3u : zeroedGrain ? 2u : 1u,
            Flags = VmdkLayout.FlagRedundantGrainTable | VmdkLayout.FlagNewlineDetect
                | (compressed ? VmdkLayout.FlagCompressed | VmdkLayout.FlagMarkers : 0)
                | (zeroedGrain ? VmdkLayout.FlagZeroGrain : 0),
            Capacity = (ulong)capacity,
            Granularity = (ulong)grainSectors,
            DescOffset = VmdkLayout.DefaultDescriptorSector,
            DescSize = VmdkLayout.DefaultDescriptorSectors,
            GtesPerGt = (uint)gtes,
            RgdOffset = (ulong)rgd,
            GdOffset = (ulong)gd,
            GrainOffset = (ulong)grainOffset,
            CheckBytes = VmdkLayout.CheckBytes,
            CompressAlgorithm = compressed ? VmdkLayout.CompressionDeflate : VmdkLayout.CompressionNone,
        };
        byte[] header = new byte[VmdkSparseHeader.Size];
        h.Write(header);
        using var fs = ImageFiles.Create(path);
        await fs.WriteAsync(header, ct).ConfigureAwait(false);
        fs.SetLength(grainOffset * VmdkLayout.SectorSize);
        byte[] dirBuf = new byte[gdSectors * VmdkLayout.SectorSize];
        foreach (long dirSector in new[] { rgd, gd })
        {
            for (long i = 0; i < gtCount; i++)
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(dirBuf.AsSpan((int)(i * 4)), (uint)(dirSector + gdSectors + (i * gtSectors)));
            fs.Position = dirSector * VmdkLayout.SectorSize;
            await fs.WriteAsync(dirBuf, ct).ConfigureAwait(false);
        }

        await fs.FlushAsync(ct).ConfigureAwait(false);
    }
}
