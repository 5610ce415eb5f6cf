using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>Opening images the qemu-img 7 way: --image-opts option strings and keys from --object secrets.</summary>
internal static partial class ImgImage
{
    /// <summary>qemu-img's words when an encrypted image is opened for data without its key.</summary>
    public const string KeyRequiredMessage = "Parameter 'encrypt.key-secret' is required for cipher";

    /// <summary>
    /// Opens the image a command names: a file name, or with --image-opts an option string that may carry
    /// encrypt.key-secret=ID for a secret given with --object. Unless <paramref name="requireKey"/> is false
    /// (img info, which reads only metadata), an encrypted image without its key is refused as qemu-img does.
    /// With <paramref name="noBacking"/> the backing file the image names is not opened (img info and bitmap,
    /// which work on the image alone, as qemu-img's do even when that file is gone).
    /// </summary>
    public static async Task<(BlockGraph Graph, BlockNode Node)> OpenAsync(ImgArgs args, string name, string? format, bool readOnly, bool requireKey = true,
        Schema.BlockdevCacheOptions? cache = null, bool forCheck = false, bool noBacking = false)
    {
        var spec = Spec(args, name, format);
        // -U / --force-share: an image opened read-only lets other processes write it meanwhile.
        bool forceShare = args.Has("-U") || args.Has("--force-share");
        var (graph, node) = await OpenAsync(spec.Path, spec.Format, readOnly, cache, forceShare, forCheck, noBacking).ConfigureAwait(false);
        try
        {
            Unlock(args, node, spec, name, requireKey);
            return (graph, node);
        }
        catch
        {
            await graph.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>What NAME means for a command: a file name, or with --image-opts an option string.</summary>
    public static ImgImageSpec Spec(ImgArgs args, string name, string? format)
    {
        if (!args.Has("--image-opts"))
            return ImgImageSpec.FromPath(name, format);
        var spec = ImgImageSpec.Parse(name);
        return spec.Format == null ? spec with { Format = format } : spec;
    }

    /// <summary>
    /// Gives an opened image (and its backing files) the keys its options name; then, unless the command
    /// reads only metadata, refuses an encrypted image still without its key, in qemu-img's words.
    /// </summary>
    public static void Unlock(ImgArgs args, BlockNode node, ImgImageSpec spec, string name, bool requireKey = true)
    {
        ApplyKeys(node, spec, ImgSecrets.Parse(args.GetAll("--object")), name);
        // The image itself first: qemu-img fails on it before it opens any backing file.
        if (requireKey && (node.EncryptionKeyMissing ? node : node.NodeNeedingKey()) is { } locked)
        {
            string what = ReferenceEquals(locked, node) ? name : locked.Filename;
            throw new ImageOpenException(Errno.EACCES, what, KeyRequiredMessage);
        }
    }

    /// <summary>Gives each image of the chain the key its encrypt.key-secret names (depth 0 is the top).</summary>
    private static void ApplyKeys(BlockNode top, ImgImageSpec spec, ImgSecrets secrets, string name)
    {
        foreach (var (depth, id) in spec.KeySecrets)
        {
            string password = secrets.Find(id) ?? throw new ImageOpenException(Errno.ENOENT, name, $"No secret with id '{id}'");
            var n = top;
            for (int i = 0; i < depth && n != null; i++)
                n = n.Backing;
            if (n is { Encrypted: true })
                n.SetEncryptionKey(password);
        }
    }
}
