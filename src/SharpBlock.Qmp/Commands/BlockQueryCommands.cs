using SharpBlock.Graph;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;
using SharpBlock.Throttling;

namespace SharpBlock.Qmp.Commands;

/// <summary>query-block, query-named-block-nodes, query-blockstats, query-block-jobs.</summary>
internal static class BlockQueryCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.QueryBlock(static async ctx =>
        {
            var list = new List<BlockInfo>();
            foreach (var dev in ctx.Server.Graph.Devices)
                list.Add(await DescribeDeviceAsync(dev, ctx.CancellationToken).ConfigureAwait(false));
            return list;
        }));
        server.Register(QmpCommandTable.QueryNamedBlockNodes(static async ctx =>
        {
            var list = new List<BlockDeviceInfo>();
            var devices = ctx.Server.Graph.Devices;
            foreach (var node in ctx.Server.Graph.Nodes.ToArray())
            {
                var info = await DescribeNodeAsync(node, ctx.CancellationToken).ConfigureAwait(false);
                // QEMU 2.1 throttles the device's top node, so that node reports the device's limits.
                foreach (var dev in devices)
                {
                    if (dev.Root == node)
                        SetThrottleLimits(info, dev.ThrottleLimits);
                }

                list.Add(info);
            }

            return list;
        }));
        server.Register(QmpCommandTable.QueryBlockstats(static ctx =>
        {
            var list = new List<BlockStats>();
            foreach (var dev in ctx.Server.Graph.Devices)
            {
                var s = new BlockStats { Device = dev.Id, Stats = ToWire(dev.Stats) };
                if (dev.Root is { } root)
                {
                    // The device's own counters stand for its root node; below it, each node's own.
                    if (FileOf(root) is { } f)
                        s.Parent = NodeStats(f);
                    if (root.Backing is { } b)
                        s.Backing = NodeStats(b);
                }

                list.Add(s);
            }

            return ValueTask.FromResult<IReadOnlyList<BlockStats>>(list);
        }));
    }

    /// <summary>The child QEMU calls bs->file: the 'file' child, or the 'image' of a blkdebug filter.</summary>
    private static BlockNode? FileOf(BlockNode node)
    {
        if (node.File is { } f)
            return f;
        foreach (var c in node.Children)
        {
            if (c.Role == ChildRole.Image)
                return c.Node;
        }

        return null;
    }

    private static BlockStats NodeStats(BlockNode node)
    {
        var s = new BlockStats { Stats = ToWire(node.Stats) };
        if (FileOf(node) is { } f)
            s.Parent = NodeStats(f);
        if (node.Backing is { } b)
            s.Backing = NodeStats(b);
        return s;
    }

    private static BlockDeviceStats ToWire(IoStats s) => new()
    {
        RdBytes = s.ReadBytes,
        WrBytes = s.WriteBytes,
        RdOperations = s.ReadOperations,
        WrOperations = s.WriteOperations,
        FlushOperations = s.FlushOperations,
        FlushTotalTimeNs = s.FlushTotalTimeNs,
        WrTotalTimeNs = s.WriteTotalTimeNs,
        RdTotalTimeNs = s.ReadTotalTimeNs,
        WrHighestOffset = s.WriteHighestOffset,
    };

    internal static async ValueTask<BlockInfo> DescribeDeviceAsync(BlockBackend dev, CancellationToken ct)
    {
        var info = new BlockInfo
        {
            Device = dev.Id,
            Type = "unknown",
            Removable = dev.Removable,
            Locked = dev.Locked,
        };
        if (dev.Removable)
            info.TrayOpen = dev.TrayOpen;
        if (dev.IoStatusEnabled)
            info.IoStatus = dev.IoStatus;
        if (dev.Root is { } root)
        {
            var inserted = await DescribeNodeAsync(root, ct).ConfigureAwait(false);
            SetThrottleLimits(inserted, dev.ThrottleLimits);
            info.Inserted = inserted;
        }

        // The seed's list: a running mirror's own bitmap, then (as QEMU before 6.0) the root node's named ones.
        var bitmaps = new List<BlockDirtyInfo>();
        if (dev.Graph.Jobs.Find(dev.Id) is SharpBlock.Jobs.Mirror.MirrorJob mirror)
        {
            bitmaps.Add(new BlockDirtyInfo
            {
                Count = mirror.DirtyBitmap.DirtyBytes,
                Granularity = (uint)mirror.DirtyBitmap.Granularity,
                Recording = true,
                Busy = true,
                Persistent = false,
            });
        }

        if (dev.Root is { } r)
            AddNamedBitmaps(bitmaps, r);
        if (bitmaps.Count > 0)
            info.DirtyBitmaps = bitmaps;

        return info;
    }

    /// <summary>The device's limits as QEMU shows them: the rates always, each burst and iops_size only when set.</summary>
    private static void SetThrottleLimits(BlockDeviceInfo info, ThrottleLimits l)
    {
        info.Bps = l.Bps;
        info.BpsRd = l.BpsRead;
        info.BpsWr = l.BpsWrite;
        info.Iops = l.Iops;
        info.IopsRd = l.IopsRead;
        info.IopsWr = l.IopsWrite;
        info.BpsMax = l.BpsMax != 0 ? l.BpsMax : null;
        info.BpsRdMax = l.BpsReadMax != 0 ? l.BpsReadMax : null;
        info.BpsWrMax = l.BpsWriteMax != 0 ? l.BpsWriteMax : null;
        info.IopsMax = l.IopsMax != 0 ? l.IopsMax : null;
        info.IopsRdMax = l.IopsReadMax != 0 ? l.IopsReadMax : null;
        info.IopsWrMax = l.IopsWriteMax != 0 ? l.IopsWriteMax : null;
        info.IopsSize = l.IopsSize != 0 ? l.IopsSize : null;
    }

    internal static async ValueTask<BlockDeviceInfo> DescribeNodeAsync(BlockNode node, CancellationToken ct)
    {
        int depth = 0;
        for (var b = node.Backing; b != null; b = b.Backing)
            depth++;
        var info = new BlockDeviceInfo
        {
            File = node.Filename,
            NodeName = node.NodeName,
            Ro = node.ReadOnly,
            Drv = node.DriverName,
            BackingFileDepth = depth,
            Encrypted = node.Encrypted,
            EncryptionKeyMissing = node.KeyRequired,
            DetectZeroes = node.Settings.DetectZeroes,
            Bps = 0,
            BpsRd = 0,
            BpsWr = 0,
            Iops = 0,
            IopsRd = 0,
            IopsWr = 0,
            Image = await node.GetImageInfoAsync(ct).ConfigureAwait(false),
        };
        if (node.BackingFileName is { } bf)
            info.BackingFile = bf;
        if (!node.Bitmaps.IsEmpty)
        {
            var bitmaps = new List<BlockDirtyInfo>();
            AddNamedBitmaps(bitmaps, node);
            info.DirtyBitmaps = bitmaps;
        }

        return info;
    }

    /// <summary>The node's named bitmaps, newest first as QEMU lists them.</summary>
    private static void AddNamedBitmaps(List<BlockDirtyInfo> list, BlockNode node)
    {
        var all = node.Bitmaps;
        for (int i = all.Length - 1; i >= 0; i--)
        {
            var b = all[i];
            list.Add(new BlockDirtyInfo
            {
                Name = b.Name,
                Count = b.Count,
                Granularity = (uint)b.Granularity,
                Recording = b.Recording,
                Busy = b.Busy,
                Persistent = b.Persistent,
                Inconsistent = b.Inconsistent ? true : null,
            });
        }
    }
}
