using System.Text;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow;

/// <summary>A new qcow image read from its -o values, not yet written.</summary>
internal sealed class QcowCreation : ImageCreation
{
    private ImageCreateQcow _given = new();

    public static QcowCreation Plan(ImageOptionValues values)
    {
        var o = ImageCreateQcow.Read(values);
        return new QcowCreation
        {
            _given = o,
            Size = ImageSizes.Required(o.Size),
            BackingFile = o.BackingFile,
            BackingFormat = o.BackingFmt,
        };
    }

    /// <summary>qemu-img's line: the size, then the options given, in its order.</summary>
    public override string Describe(string fileName)
    {
        var sb = new StringBuilder();
        sb.Append("Formatting '").Append(fileName).Append("', fmt=qcow size=").Append(Size);
        if (_given.BackingFile != null)
            sb.Append(" backing_file=").Append(_given.BackingFile);
        if (_given.BackingFmt != null)
            sb.Append(" backing_fmt=").Append(_given.BackingFmt);
        if (_given.Encryption is { } e)
            sb.Append(" encryption=").Append(e ? "on" : "off");
        if (_given.EncryptFormat != null)
            sb.Append(" encrypt.format=").Append(_given.EncryptFormat);
        if (_given.EncryptKeySecret != null)
            sb.Append(" encrypt.key-secret=").Append(_given.EncryptKeySecret);
        return sb.ToString();
    }

    public override bool Encrypted => _given.Encryption == true || _given.EncryptFormat != null;

    /// <summary>
    /// qemu-img's checks of the encryption options, in its order and words. Only the header records
    /// encryption, but qemu-img insists on the key anyway (it sets up the cipher while creating).
    /// </summary>
    public override void Validate()
    {
        if (_given.Encryption != null && _given.EncryptFormat != null)
            throw new BlockException(Errno.EINVAL, "'encrypt.format' and its alias 'encryption' can't be used at the same time");
        if (_given.EncryptFormat is { } f && f != "aes")
            throw new BlockException(Errno.EINVAL, "Unsupported encryption format");
        if (Encrypted && _given.EncryptKeySecret == null)
            throw new BlockException(Errno.EINVAL, "Parameter 'encrypt.key-secret' is required for cipher");
        if (!Encrypted && _given.EncryptKeySecret != null)
            throw new BlockException(Errno.EINVAL, "Parameter 'encrypt.format' is missing");
        QcowCreator.Validate(Size, BackingFile);
    }

    public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
        QcowCreator.CreateAsync(path, Size, BackingFile, Encrypted, cancellationToken);
}
