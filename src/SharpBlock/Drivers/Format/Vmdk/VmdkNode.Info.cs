using System.Globalization;
using System.Text;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Vmdk;

/// <summary>What img info, query-block and img check show of a VMDK image, as qemu-img 7.2 shows it.</summary>
public sealed partial class VmdkNode : IFormatSpecificInfo, ICheckableImage, IClusteredImage
{
    /// <summary>The grain of the first extent when it is sparse: convert writes in whole grains (streamOptimized needs them).</summary>
    public int ClusterSize => _extents[0].GrainBytes > 0 ? (int)_extents[0].GrainBytes : 65536;

    public override async ValueTask<ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = await base.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        if (_extents[0].GrainBytes > 0)
            info.ClusterSize = _extents[0].GrainBytes;
        var list = new List<ImageInfo>(_extents.Count);
        foreach (var e in _extents)
        {
            var x = new ImageInfo { Filename = e.File.Filename, Format = e.Type, VirtualSize = e.Length };
            if (e.GrainBytes > 0)
                x.ClusterSize = e.GrainBytes;
            if (e.Compressed)
                x.Compressed = true;
            list.Add(x);
        }

        info.FormatSpecific = new ImageInfoSpecific
        {
            Type = ImageInfoSpecificKind.Vmdk,
            Vmdk = new ImageInfoSpecificVmdk { CreateType = CreateType, Cid = Cid, ParentCid = ParentCid, Extents = list },
        };
        return info;
    }

    /// <summary>qemu-img 7.2's lines: the three values, then each extent with its fields in its order.</summary>
    void IFormatSpecificInfo.AppendFormatSpecific(StringBuilder text)
    {
        var ci = CultureInfo.InvariantCulture;
        text.Append(ci, $"    cid: {Cid}\n");
        text.Append(ci, $"    parent cid: {ParentCid}\n");
        text.Append(ci, $"    create type: {CreateType}\n");
        text.Append("    extents:\n");
        for (int i = 0; i < _extents.Count; i++)
        {
            var e = _extents[i];
            text.Append(ci, $"        [{i}]:\n");
            if (e.Compressed)
                text.Append("            compressed: true\n");
            text.Append(ci, $"            virtual size: {e.Length}\n");
            text.Append(ci, $"            filename: {e.File.Filename}\n");
            if (e.GrainBytes > 0)
                text.Append(ci, $"            cluster size: {e.GrainBytes}\n");
            text.Append(ci, $"            format: {e.Type}\n");
        }
    }

    /// <summary>
    /// QEMU's check for VMDK: every allocated grain must start inside its extent's file. The first one that does
    /// not is reported and ends the check as a failure ("Check failed: Invalid argument"), as qemu-img 7.2 ends
    /// it; there is nothing to repair with, so -r is refused as qemu-img refuses it.
    /// </summary>
    public async ValueTask<ImageCheckResult> CheckAsync(ImageCheckMode mode, Action<string>? report, CancellationToken cancellationToken = default)
    {
        if (mode != ImageCheckMode.None)
            throw new Errors.BlockException(Errors.Errno.EOPNOTSUPP, "This image format does not support checks");
        var result = new ImageCheckResult();
        await _meta.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var e in _extents)
            {
                if (e is not VmdkSparseExtent s)
                    continue;
                var bad = await s.GrainsPastEndAsync(cancellationToken).ConfigureAwait(false);
                if (bad.Count > 0)
                {
                    report?.Invoke(string.Create(CultureInfo.InvariantCulture, $"ERROR: cluster offset for sector {(e.Start / VmdkLayout.SectorSize) + bad[0]} points after EOF"));
                    throw new Errors.BlockException(Errors.Errno.EINVAL, "Check failed: Invalid argument");
                }
            }
        }
        finally
        {
            _meta.Release();
        }

        return result;
    }
}
