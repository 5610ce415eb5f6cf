using System.Globalization;
using System.Text;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>What img info and query-block show of a qcow2 image.</summary>
public sealed partial class Qcow2Node
{
    public override async ValueTask<ImageInfo> GetImageInfoAsync(CancellationToken cancellationToken = default)
    {
        var info = await base.GetImageInfoAsync(cancellationToken).ConfigureAwait(false);
        info.ClusterSize = _clusterSize;
        info.DirtyFlag = IsDirty;
        info.FormatSpecific = new ImageInfoSpecific { Type = ImageInfoSpecificKind.Qcow2, Qcow2 = Specific() };
        if (_snapshots.Count > 0)
        {
            var list = new List<SnapshotInfo>(_snapshots.Count);
            foreach (var s in _snapshots)
                list.Add(ToSnapshotInfo(s));
            info.Snapshots = list;
        }

        return info;
    }

    /// <summary>The qcow2 details, with the members qemu 7.2 reports for this version of the format.</summary>
    private ImageInfoSpecificQCow2 Specific()
    {
        var s = new ImageInfoSpecificQCow2 { Compat = Compat, CompressionType = "zlib", RefcountBits = RefcountBits };
        if (Encrypted)
            s.Encrypt = new ImageInfoSpecificQCow2Encryption { Format = "aes" };
        if (V3)
        {
            s.LazyRefcounts = LazyRefcounts;
            s.Corrupt = IsCorrupt;
            s.ExtendedL2 = false;
            s.Bitmaps = StoredBitmapInfo();
        }

        return s;
    }

    /// <summary>qemu-img 7.2's human lines, in its order, from the same details the JSON carries.</summary>
    void IFormatSpecificInfo.AppendFormatSpecific(StringBuilder text)
    {
        var s = Specific();
        text.Append("    compat: ").Append(s.Compat).Append('\n');
        text.Append("    compression type: ").Append(s.CompressionType).Append('\n');
        if (s.LazyRefcounts is { } lazy)
            text.Append("    lazy refcounts: ").Append(lazy ? "true" : "false").Append('\n');
        if (s.Bitmaps is { } bitmaps)
        {
            text.Append("    bitmaps:\n");
            for (int i = 0; i < bitmaps.Count; i++)
            {
                text.Append(CultureInfo.InvariantCulture, $"        [{i}]:\n            flags:\n");
                for (int f = 0; f < bitmaps[i].Flags.Count; f++)
                    text.Append(CultureInfo.InvariantCulture, $"                [{f}]: {bitmaps[i].Flags[f].ToWire()}\n");
                text.Append("            name: ").Append(bitmaps[i].Name).Append('\n');
                text.Append(CultureInfo.InvariantCulture, $"            granularity: {bitmaps[i].Granularity}\n");
            }
        }

        text.Append(CultureInfo.InvariantCulture, $"    refcount bits: {s.RefcountBits}\n");
        if (s.Encrypt is { } e)
            text.Append("    encrypt:\n        format: ").Append(e.Format).Append('\n');
        if (s.Corrupt is { } corrupt)
            text.Append("    corrupt: ").Append(corrupt ? "true" : "false").Append('\n');
        if (s.ExtendedL2 is { } ext)
            text.Append("    extended l2: ").Append(ext ? "true" : "false").Append('\n');
    }

    internal static SnapshotInfo ToSnapshotInfo(Qcow2Snapshot s) => ToInternal(s).ToSnapshotInfo();
}
