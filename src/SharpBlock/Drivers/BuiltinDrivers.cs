using SharpBlock.Drivers.Filter.Blkdebug;
using SharpBlock.Drivers.Filter.Blkverify;
using SharpBlock.Drivers.Filter.Quorum;
using SharpBlock.Drivers.Format.Cow;
using SharpBlock.Drivers.Format.Qcow;
using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Drivers.Format.Raw;
using SharpBlock.Drivers.Format.Vdi;
using SharpBlock.Drivers.Format.Vpc;
using SharpBlock.Drivers.Format.Vmdk;
using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Drivers.Protocol.Rbd;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers;

/// <summary>Registers every driver the library implements. A driver that is not here is refused at blockdev-add.</summary>
internal static class BuiltinDrivers
{
    public static void RegisterAll(BlockDriverRegistry r)
    {
        r.Register(BlockdevDriver.File, static (ctx, _) => OpenFile(ctx, ctx.Options.File, "file"));
        r.Register(BlockdevDriver.HostDevice, static (ctx, _) => OpenFile(ctx, ctx.Options.HostDevice, "host_device"));
        r.Register(BlockdevDriver.HostCdrom, static (ctx, _) => OpenFile(ctx, ctx.Options.HostCdrom, "host_cdrom"));
        r.Register(BlockdevDriver.HostFloppy, static (ctx, _) => OpenFile(ctx, ctx.Options.HostFloppy, "host_floppy"));
        r.Register(BlockdevDriver.Blkdebug, BlkdebugNode.OpenAsync);
        r.Register(BlockdevDriver.Vvfat, Protocol.Vvfat.VvfatDriver.OpenAsync);
        r.RegisterFilenameProtocol(Protocol.Vvfat.VvfatDriver.ParseFilename);
        r.Register(BlockdevDriver.Rbd, RbdNode.OpenAsync);
        r.RegisterFilenameProtocol(RbdFilename.Parse);
        r.Register(BlockdevDriver.Blkverify, BlkverifyNode.OpenAsync);
        r.Register(BlockdevDriver.Quorum, QuorumNode.OpenAsync);
        Protocol.Curl.CurlDriver.Register(r);
        // Formats probe in this order; ties go to the first.
        r.RegisterFormat(new Qcow2Format());
        r.RegisterFormat(new Format.Qed.QedFormat());
        r.RegisterFormat(new QcowFormat());
        r.RegisterFormat(new CowFormat());
        r.RegisterFormat(new Format.Vhdx.VhdxFormat());
        r.RegisterFormat(new VdiFormat());
        r.RegisterFormat(new VpcFormat());
        r.RegisterFormat(new VmdkFormat());
        r.RegisterFormat(new Format.Parallels.ParallelsFormat());
        r.RegisterFormat(new Format.Bochs.BochsFormat());
        r.RegisterFormat(new Format.Cloop.CloopFormat());
        r.RegisterFormat(new Format.Dmg.DmgFormat());
        r.RegisterFormat(new RawFormat());
    }

    private static ValueTask<BlockNode> OpenFile(BlockOpenContext ctx, BlockdevOptionsFile? o, string driver)
    {
        if (o == null)
            throw new BlockException(Errno.EINVAL, "Missing file options");
        return ValueTask.FromResult<BlockNode>(FileNode.Open(o.Filename, ctx.Settings, driver));
    }
}
