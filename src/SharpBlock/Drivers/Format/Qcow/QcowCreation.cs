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
        return sb.ToString();
    }

    public override void Validate()
    {
        if (_given.Encryption == true)
            throw new BlockException(Errno.EOPNOTSUPP, "qcow AES encryption is not supported by this driver");
        QcowCreator.Validate(Size, BackingFile);
    }

    public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
        QcowCreator.CreateAsync(path, Size, BackingFile, cancellationToken);
}
