using System.Text;
using SharpBlock.Options;

namespace SharpBlock.Cli.Img;

/// <summary>
/// The secrets given with qemu-img's `--object secret,id=ID,data=PASS` (or `file=PATH`, optionally
/// `format=base64`), looked up by id where an option names them (encrypt.key-secret=ID).
/// </summary>
internal sealed class ImgSecrets
{
    private readonly Dictionary<string, string> _byId = new(StringComparer.Ordinal);

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
            if (props.ContainsKey("keyid"))
                throw new ImgUsageException("Encrypted secrets (keyid) are not supported");
            string value;
            if (props.TryGetValue("data", out var data))
            {
                if (props.ContainsKey("file"))
                    throw new ImgUsageException("'file' and 'data' are mutually exclusive");
                value = data;
            }
            else if (props.TryGetValue("file", out var file))
            {
                // Used verbatim, a trailing newline included, as QEMU reads it.
                try
                {
                    value = File.ReadAllText(file, new UTF8Encoding(false));
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw new ImgUsageException($"Unable to read {file}: {ex.Message}");
                }
            }
            else
            {
                throw new ImgUsageException("Either 'file' or 'data' must be provided");
            }

            switch (props.GetValueOrDefault("format") ?? "raw")
            {
                case "raw":
                    break;
                case "base64":
                    try
                    {
                        value = Encoding.UTF8.GetString(Convert.FromBase64String(value));
                    }
                    catch (FormatException)
                    {
                        throw new ImgUsageException($"Secret '{id}' is not valid base64");
                    }

                    break;
                case var f:
                    throw new ImgUsageException($"Parameter 'format' does not accept value '{f}'");
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
