using System.Globalization;
using System.Text;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>A new qcow2 image read from its -o values (<see cref="Qcow2Format.PlanCreate"/>), not yet written.</summary>
internal sealed class Qcow2Creation : ImageCreation
{
    public const string EncryptionAlias = "encryption";
    public const string EncryptFormat = "encrypt.format";
    public const string EncryptKeySecret = "encrypt.key-secret";

    private readonly ImageOptionValues _given;

    private Qcow2Creation(ImageOptionValues given, Qcow2CreateOptions options)
    {
        _given = given;
        Options = options;
    }

    public Qcow2CreateOptions Options { get; }

    public override bool Encrypted => Options.Encrypted;

    public static Qcow2Creation Plan(ImageOptionValues values)
    {
        var o = ImageCreateQcow2.Read(values);
        if (o.CompressionType is { } ct && ct != "zlib")
            throw new BlockException(Errno.EINVAL, $"Unsupported compression type '{ct}'");
        if (o.ExtendedL2 == true)
            throw new BlockException(Errno.EINVAL, "extended_l2 is not supported");
        ulong clusterSize = o.ClusterSize ?? (1u << Qcow2Layout.DefaultClusterBits);
        var options = new Qcow2CreateOptions
        {
            Size = ImageSizes.Required(o.Size),
            // Out-of-range sizes fail the creator's own check with qemu-img's words.
            ClusterSize = clusterSize > int.MaxValue ? int.MaxValue : (int)clusterSize,
            Compat = o.Compat ?? "1.1",
            LazyRefcounts = o.LazyRefcounts ?? false,
            RefcountBits = o.RefcountBits is { } rb ? (int)Math.Clamp(rb, int.MinValue, int.MaxValue) : 16,
            Preallocation = o.Preallocation.ToPreallocation(),
            BackingFile = o.BackingFile,
            BackingFormat = o.BackingFmt,
            Encrypted = IsEncrypted(o),
        };
        return new Qcow2Creation(values, options)
        {
            Size = options.Size,
            BackingFile = options.BackingFile,
            BackingFormat = options.BackingFormat,
        };
    }

    /// <summary>"encryption=on" is the old spelling of "encrypt.format=aes"; only legacy AES is written.</summary>
    private static bool IsEncrypted(ImageCreateQcow2 o)
    {
        if (o.Encryption != null && o.EncryptFormat != null)
            throw new BlockException(Errno.EINVAL, $"'{EncryptFormat}' and its alias '{EncryptionAlias}' can't be used at the same time");
        if (o.Encryption is { } alias)
            return alias;
        return o.EncryptFormat switch
        {
            null => false,
            "aes" => true,
            "luks" => throw new BlockException(Errno.EINVAL, "Encryption format 'luks' is not supported; only 'aes' (legacy qcow2 encryption) is"),
            var other => throw new BlockException(Errno.EINVAL, $"Parameter '{EncryptFormat}' does not accept value '{other}'"),
        };
    }

    /// <summary>qemu-img's line: the options it always shows, and those it shows only when given, in its order.</summary>
    public override string Describe(string fileName)
    {
        var o = Options;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Formatting '{fileName}', fmt=qcow2");
        foreach (string key in (ReadOnlySpan<string>)[EncryptionAlias, EncryptFormat, EncryptKeySecret])
        {
            if (_given.Get(key) is { } v)
                sb.Append(' ').Append(key).Append('=').Append(v);
        }

        sb.Append(CultureInfo.InvariantCulture, $" cluster_size={o.ClusterSize} extended_l2=off");
        if (_given.Has("preallocation"))
            sb.Append(" preallocation=").Append(o.Preallocation.ToString().ToLowerInvariant());
        sb.Append(CultureInfo.InvariantCulture, $" compression_type=zlib size={o.Size}");
        if (o.BackingFile != null)
            sb.Append(" backing_file=").Append(o.BackingFile);
        if (o.BackingFormat != null)
            sb.Append(" backing_fmt=").Append(o.BackingFormat);
        if (_given.Has("compat"))
            sb.Append(" compat=").Append(o.Compat);
        sb.Append(" lazy_refcounts=").Append(o.LazyRefcounts ? "on" : "off");
        sb.Append(CultureInfo.InvariantCulture, $" refcount_bits={o.RefcountBits}");
        return sb.ToString();
    }

    public override void Validate() => Qcow2Creator.Validate(Options);

    public override async ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
        await Qcow2Creator.CreateAsync(path, Options, cancellationToken).ConfigureAwait(false);
}
