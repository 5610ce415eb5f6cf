using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>Opens a qcow2 node from blockdev options: its file, then its backing chain.</summary>
public static class Qcow2Driver
{
    internal static async ValueTask<BlockNode> OpenAsync(BlockOpenContext ctx, CancellationToken ct)
    {
        var o = ctx.Options.Qcow2 ?? throw new BlockException(Errno.EINVAL, "Missing qcow2 options");
        var file = await ctx.OpenChildAsync(o.File, ct).ConfigureAwait(false);
        var node = await Qcow2Node.OpenAsync(file, ctx.Settings, ct).ConfigureAwait(false);
        node = node.WithDiscardOptions(o.PassDiscardRequest, o.PassDiscardSnapshot, o.PassDiscardOther);
        node.OverlapChecks = Qcow2MetadataKindNames.FromOptions(o.OverlapCheck);
        try
        {
            if (o.LazyRefcounts == true && node.Version < 3)
                throw new BlockException(Errno.EINVAL, "Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level");
            if (o.LazyRefcounts is { } lazy)
                node.LazyRefcountsOverride = lazy;
            node.ConfigureCaches(new Qcow2CacheOptions(o.CacheSize, o.L2CacheSize, o.L2CacheEntrySize, o.RefcountCacheSize, o.CacheCleanInterval));
            if (o.Encrypt is { } encrypt)
                Unlock(ctx.Graph, node, encrypt);
            BlockNode? backing = null;
            if (o.Backing is { } b)
            {
                if (b.Reference is not "")
                    backing = await ctx.OpenChildAsync(b, ct).ConfigureAwait(false);
            }
            else if (node.BackingFileName is { } name)
            {
                string path = ResolveBacking(file.Filename, name);
                string fmt = node.BackingFormat ?? await ProbeAsync(path, ct).ConfigureAwait(false);
                backing = await ctx.OpenChildAsync(new BlockdevRef { Definition = BackingOptions(path, fmt) }, ct).ConfigureAwait(false);
            }

            if (backing != null)
                node.AttachBacking(backing);
            return node;
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Newer QEMU's way to give the key at open (encrypt.format=aes,encrypt.key-secret=ID with a secret from
    /// --object), checked as QEMU checks it. Without these options an encrypted image still opens and waits
    /// for block_passwd, as in 2.1.
    /// </summary>
    private static void Unlock(BlockGraph graph, Qcow2Node node, BlockdevQcow2Encryption encrypt)
    {
        string wanted = encrypt.Format.ToWire();
        // Images of any other crypt method were refused when the header was read.
        if (!node.Encrypted)
            throw new BlockException(Errno.EINVAL, $"No encryption in image header, but options specified format '{wanted}'");
        if (encrypt.Format != BlockdevQcow2EncryptionFormat.Aes)
            throw new BlockException(Errno.EINVAL, $"Header reported 'aes' encryption format but options specify '{wanted}'");
        string id = encrypt.KeySecret ?? throw new BlockException(Errno.EINVAL, "Parameter 'encrypt.key-secret' is required for cipher");
        node.SetEncryptionKey(graph.Secrets.Get(id));
    }

    /// <summary>A relative backing name is relative to the directory of the image that names it.</summary>
    public static string ResolveBacking(string imagePath, string backing)
    {
        if (Path.IsPathRooted(backing))
            return backing;
        string? dir = Path.GetDirectoryName(imagePath);
        return string.IsNullOrEmpty(dir) ? backing : Path.Combine(dir, backing);
    }

    /// <summary>The format of an image file by its magic: qcow2 or raw.</summary>
    public static async ValueTask<string> ProbeAsync(string path, CancellationToken ct) =>
        (await ImageFormats.ProbeAsync(path, ct).ConfigureAwait(false)).ToWire();

    /// <summary>Options that open a backing image read-only with the given format over a file node.</summary>
    public static BlockdevOptions BackingOptions(string path, string format) => ImageOptions(path, format, readOnly: true);

    /// <summary>Options that open an image file with the given format (qcow2 or raw), as img commands do.</summary>
    public static BlockdevOptions ImageOptions(string path, string format, bool readOnly, string? nodeName = null)
    {
        var o = ImageFormats.FileOptions(ImageFormats.ParseFormat(format), path);
        o.ReadOnly = readOnly;
        o.NodeName = nodeName;
        return o;
    }
}
