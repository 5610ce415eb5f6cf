using System.Text;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Options;

namespace SharpBlock.Cli.Img;

/// <summary>
/// The secrets given with qemu-img's `--object secret,id=ID,data=PASS` (or `file=PATH`, optionally
/// `format=base64`, or encrypted with `keyid=MASTER,iv=IV`), looked up by id where an option names them
/// (encrypt.key-secret=ID). Loading is the library's <see cref="SecretLoader"/>, shared with QMP's object-add.
/// </summary>
internal sealed class ImgSecrets
{
    private readonly Dictionary<string, string> _byId = new(StringComparer.Ordinal);

    // The same secrets as bytes, for a later secret's keyid (a master key is raw bytes, not text).
    private readonly SecretStore _store = new();

    public static ImgSecrets Parse(IReadOnlyList<string> objects)
    {
        var r = new ImgSecrets();
        foreach (var o in objects)
        {
            var props = Keyval.Dictionary(o, implicitKey: "qom-type");
            props.TryGetValue("qom-type", out var type);
            if (type != "secret")
                throw new ImgUsageException($"Parameter 'qom-type' does not accept value '{type}'");
            if (!props.TryGetValue("id", out var id) || id.Length == 0)
                throw new ImgUsageException("Parameter 'id' is missing");
            bool base64 = (props.GetValueOrDefault("format") ?? "raw") switch
            {
                "raw" => false,
                "base64" => true,
                var f => throw new ImgUsageException($"Parameter 'format' does not accept value '{f}'"),
            };
            string value;
            try
            {
                byte[] bytes = SecretLoader.Load(r._store, props.GetValueOrDefault("data"), props.GetValueOrDefault("file"),
                    base64, props.GetValueOrDefault("keyid"), props.GetValueOrDefault("iv"));
                r._store.Add(id, bytes);
                value = Encoding.UTF8.GetString(bytes);
            }
            catch (BlockException ex)
            {
                throw new ImgUsageException(ex.Message);
            }

            if (!r._byId.TryAdd(id, value))
                throw new ImgUsageException($"attempt to add duplicate property '{id}' to object (type 'container')");
        }

        return r;
    }

    /// <summary>Every secret, by id.</summary>
    public IReadOnlyDictionary<string, string> All => _byId;

    /// <summary>The secret's text, or null when no --object defined that id.</summary>
    public string? Find(string id) => _byId.GetValueOrDefault(id);
}

/// <summary>
/// An image named by --image-opts: "driver=qcow2,file.filename=PATH,encrypt.key-secret=ID"; keys of
/// backing images as "backing.encrypt.key-secret=ID" (one "backing." per level).
/// </summary>
internal sealed record ImgImageSpec(string Path, string? Format, IReadOnlyDictionary<int, string> KeySecrets)
{
    private const string KeySecret = "encrypt.key-secret";

    /// <summary>A plain file name: no options, no keys.</summary>
    public static ImgImageSpec FromPath(string path, string? format) => new(path, format, new Dictionary<int, string>());

    public static ImgImageSpec Parse(string text)
    {
        var props = Keyval.Dictionary(text);
        string? path = null;
        string? format = null;
        var keys = new Dictionary<int, string>();
        foreach (var (key, value) in props)
        {
            switch (key)
            {
                case "driver":
                    format = value;
                    break;
                case "file.filename" or "filename":
                    path = value;
                    break;
                case "file.driver" when value == "file":
                    break;
                case "encrypt.format" when value == "aes":
                    break;
                default:
                    int depth = 0;
                    string rest = key;
                    while (rest.StartsWith("backing.", StringComparison.Ordinal))
                    {
                        rest = rest["backing.".Length..];
                        depth++;
                    }

                    if (rest != KeySecret)
                        throw new ImgUsageException($"Could not open '{text}': Unsupported image option '{key}'");
                    keys[depth] = value;
                    break;
            }
        }

        if (path == null)
            throw new ImgUsageException($"Could not open '{text}': A block device must be specified for \"file\"");
        return new ImgImageSpec(path, format, keys);
    }
}
