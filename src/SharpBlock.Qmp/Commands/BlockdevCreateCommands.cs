using System.Globalization;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Creation;
using SharpBlock.Drivers.Protocol.File;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Jobs.Create;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// blockdev-create (QEMU 7.2): the image is made by a job that stays concluded until job-dismiss. Each branch's
/// members are turned into the format's -o values, so the image is made by the same plan, checks and creator
/// as `img create`; only the refusals that differ between qemu-img and blockdev-create are made here.
/// </summary>
internal static class BlockdevCreateCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.BlockdevCreate(static (a, ctx) =>
        {
            var graph = ctx.Server.Graph;
            var o = a.Options;
            var format = ImageFormats.Find(o.Driver == BlockdevDriver.File ? BlockdevDriver.Raw : o.Driver, graph.Drivers);
            // As QEMU, a driver without a creator is refused before any job exists.
            if (format == null || !HasBranch(o))
                throw new QmpException("Driver does not support blockdev-create");
            var job = new CreateJob(graph, ct => CreateAsync(graph, format, o, ct));
            // blockdev-create jobs wait for job-dismiss, as in QEMU 7.2, so the result can be read.
            graph.Jobs.Start(job, a.JobId, autoFinalize: true, autoDismiss: false);
            return ValueTask.CompletedTask;
        }));
    }

    private static bool HasBranch(BlockdevCreateOptions o) =>
        o.File != null || o.Qcow2 != null || o.Qed != null || o.Qcow != null || o.Vmdk != null
        || o.Vhdx != null || o.Vdi != null || o.Vpc != null || o.Parallels != null;

    private static async ValueTask CreateAsync(BlockGraph graph, BlockFormat format, BlockdevCreateOptions o, CancellationToken ct)
    {
        var values = new ImageOptionValues();
        if (o.File is { } file)
        {
            // A host file is a raw image with nothing in it.
            Put(values, "size", file.Size);
            Put(values, "preallocation", file.Preallocation?.ToWire());
            await PlanAndCreateAsync(format, values, file.Filename, ct).ConfigureAwait(false);
            return;
        }

        BlockdevRef target = Fill(graph, o, values);
        await CreateOnNodeAsync(graph, format, values, target, ct).ConfigureAwait(false);
    }

    /// <summary>The branch's members as -o values (7.2's dashes are qemu-img's underscores); returns the file node.</summary>
    private static BlockdevRef Fill(BlockGraph graph, BlockdevCreateOptions o, ImageOptionValues v)
    {
        switch (o.Driver)
        {
            case BlockdevDriver.Qcow2:
                var q2 = o.Qcow2!;
                if (q2.Size % 512 != 0)
                    throw new BlockException(Errno.EINVAL, "Image size must be a multiple of 512 bytes");
                Put(v, "size", q2.Size);
                Put(v, "compat", q2.Version?.ToWire());
                Put(v, "backing_file", q2.BackingFile);
                Put(v, "backing_fmt", q2.BackingFmt?.ToWire());
                Put(v, "cluster_size", q2.ClusterSize);
                Put(v, "preallocation", q2.Preallocation?.ToWire());
                Put(v, "lazy_refcounts", q2.LazyRefcounts);
                Put(v, "refcount_bits", q2.RefcountBits);
                Encryption(graph, v, q2.Encrypt);
                return q2.File;
            case BlockdevDriver.Qcow:
                var q = o.Qcow!;
                Put(v, "size", q.Size);
                Put(v, "backing_file", q.BackingFile);
                Encryption(graph, v, q.Encrypt);
                return q.File;
            case BlockdevDriver.Qed:
                var qed = o.Qed!;
                Put(v, "size", qed.Size);
                Put(v, "backing_file", qed.BackingFile);
                Put(v, "backing_fmt", qed.BackingFmt?.ToWire());
                Put(v, "cluster_size", qed.ClusterSize);
                Put(v, "table_size", qed.TableSize);
                return qed.File;
            case BlockdevDriver.Vmdk:
                var vm = o.Vmdk!;
                Put(v, "size", vm.Size);
                Put(v, "subformat", vm.Subformat?.ToWire());
                Put(v, "backing_file", vm.BackingFile);
                Put(v, "adapter_type", vm.AdapterType?.ToWire());
                Put(v, "hwversion", vm.Hwversion);
                Put(v, "toolsversion", vm.Toolsversion);
                Put(v, "zeroed_grain", vm.ZeroedGrain);
                return vm.File;
            case BlockdevDriver.Vhdx:
                var vh = o.Vhdx!;
                Put(v, "size", vh.Size);
                Put(v, "log_size", vh.LogSize);
                Put(v, "block_size", vh.BlockSize);
                Put(v, "subformat", vh.Subformat?.ToWire());
                Put(v, "block_state_zero", vh.BlockStateZero);
                return vh.File;
            case BlockdevDriver.Vdi:
                var vdi = o.Vdi!;
                Put(v, "size", vdi.Size);
                // vdi's only preallocation is its static layout (the block map filled in).
                switch (vdi.Preallocation)
                {
                    case null or PreallocMode.Off:
                        break;
                    case PreallocMode.Metadata:
                        Put(v, "static", true);
                        break;
                    default:
                        throw new BlockException(Errno.EINVAL, "Preallocation mode not supported for vdi");
                }

                return vdi.File;
            case BlockdevDriver.Vpc:
                var vpc = o.Vpc!;
                Put(v, "size", vpc.Size);
                Put(v, "subformat", vpc.Subformat?.ToWire());
                Put(v, "force_size", vpc.ForceSize);
                return vpc.File;
            default:
                var p = o.Parallels!;
                Put(v, "size", p.Size);
                Put(v, "cluster_size", p.ClusterSize);
                return p.File;
        }
    }

    /// <summary>
    /// QCryptoBlockCreateOptions: qcow is the legacy AES both formats write. blockdev-create needs the key's
    /// secret (QEMU sets the cipher up while creating), though only the header records the encryption.
    /// </summary>
    private static void Encryption(BlockGraph graph, ImageOptionValues v, QCryptoBlockCreateOptions? encrypt)
    {
        if (encrypt == null)
            return;
        if (encrypt.Format == QCryptoBlockFormat.Luks)
        {
            Put(v, "encrypt.format", "luks");
            return;
        }

        string id = encrypt.Qcow?.KeySecret ?? throw new BlockException(Errno.EINVAL, "Parameter 'encrypt.key-secret' is required for cipher");
        _ = graph.Secrets.Get(id);
        Put(v, "encrypt.format", "aes");
        Put(v, "encrypt.key-secret", id);
    }

    /// <summary>
    /// Writes the image into the file behind a node. The creators write through a host file's path (as qemu-img
    /// create does), so the node must be a host file node that nothing else uses; it lets go of its image locks meanwhile.
    /// </summary>
    private static async ValueTask CreateOnNodeAsync(BlockGraph graph, BlockFormat format, ImageOptionValues values, BlockdevRef target,
        CancellationToken ct)
    {
        BlockNode? inline = null;
        BlockNode node;
        if (target.Reference is { } name)
        {
            node = graph.FindNode(name) ?? graph.FindDevice(name)?.Root
                ?? throw new BlockException(Errno.ENODEV, $"Cannot find device='{name}' nor node-name='{name}'");
        }
        else
        {
            node = inline = await graph.OpenDetachedAsync(target.Definition!, ct).ConfigureAwait(false);
        }

        try
        {
            if (node is not FileNode fileNode)
                throw new BlockException(Errno.EOPNOTSUPP, $"blockdev-create of {format.Name} needs a host file node, not a '{node.DriverName}' node");
            if (node.ReadOnly)
                throw new BlockException(Errno.EACCES, $"Node '{node.NodeName}' is read-only");
            if (node.Users.Count > 0)
                throw new BlockException(Errno.EBUSY, $"Node '{node.NodeName}' is busy: node is used as a child or by a device");
            await fileNode.RewriteThroughPathAsync(() => PlanAndCreateAsync(format, values, fileNode.Path, ct)).ConfigureAwait(false);
        }
        finally
        {
            if (inline != null)
                await graph.CloseUnusedAsync(inline).ConfigureAwait(false);
        }
    }

    private static async ValueTask PlanAndCreateAsync(BlockFormat format, ImageOptionValues values, string path, CancellationToken ct)
    {
        values.Check(format.CreateOptions);
        var plan = format.PlanCreate(values);
        plan.Validate();
        await plan.CreateAsync(path, ct).ConfigureAwait(false);
    }

    private static void Put(ImageOptionValues v, string name, string? value)
    {
        if (value != null)
            v.Set(name, value);
    }

    private static void Put(ImageOptionValues v, string name, ulong? value)
    {
        if (value is { } n)
            v.Set(name, n.ToString(CultureInfo.InvariantCulture));
    }

    private static void Put(ImageOptionValues v, string name, long? value)
    {
        if (value is { } n)
            v.Set(name, n.ToString(CultureInfo.InvariantCulture));
    }

    private static void Put(ImageOptionValues v, string name, bool? value)
    {
        if (value is { } b)
            v.Set(name, b ? "on" : "off");
    }
}
