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
    /// </summary>
    public static async Task<(BlockGraph Graph, BlockNode Node)> OpenAsync(ImgArgs args, string name, string? format, bool readOnly, bool requireKey = true)
    {
        var secrets = ImgSecrets.Parse(args.GetAll("--object"));
        var spec = args.Has("--image-opts") ? ImgImageSpec.Parse(name) : ImgImageSpec.FromPath(name, format);
        var (graph, node) = await OpenAsync(spec.Path, spec.Format ?? format, readOnly).ConfigureAwait(false);
        try
        {
            ApplyKeys(node, spec, secrets, name);
            if (requireKey && node.NodeNeedingKey() is { } locked)
            {
                string what = ReferenceEquals(locked, node) ? name : locked.Filename;
                throw new BlockException(Errno.EACCES, $"Could not open '{what}': {KeyRequiredMessage}");
            }

            return (graph, node);
        }
        catch
        {
            await graph.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Gives each image of the chain the key its encrypt.key-secret names (depth 0 is the top).</summary>
    private static void ApplyKeys(BlockNode top, ImgImageSpec spec, ImgSecrets secrets, string name)
    {
        foreach (var (depth, id) in spec.KeySecrets)
        {
            string password = secrets.Find(id) ?? throw new BlockException(Errno.ENOENT, $"Could not open '{name}': No secret with id '{id}'");
            var n = top;
            for (int i = 0; i < depth && n != null; i++)
                n = n.Backing;
            if (n is { Encrypted: true })
                n.SetEncryptionKey(password);
        }
    }
}
