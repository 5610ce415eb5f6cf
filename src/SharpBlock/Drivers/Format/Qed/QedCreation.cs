using System.Globalization;
using System.Text;
using SharpBlock.Drivers.Creation;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qed;

/// <summary>A new QED image read from its -o values, not yet written.</summary>
internal sealed class QedCreation : ImageCreation
{
    private QedCreateOptions _options = null!;
    private bool _tableSizeGiven;

    public static QedCreation Plan(ImageOptionValues values)
    {
        var o = ImageCreateQed.Read(values);
        var options = new QedCreateOptions
        {
            Size = ImageSizes.Required(o.Size),
            // Out-of-range values fail Validate with qemu-img's words.
            ClusterSize = (uint)Math.Min(o.ClusterSize ?? QedLayout.DefaultClusterSize, uint.MaxValue),
            TableSize = (uint)Math.Min(o.TableSize ?? QedLayout.DefaultTableSize, uint.MaxValue),
            BackingFile = o.BackingFile,
            BackingFormat = o.BackingFmt,
        };
        return new QedCreation
        {
            Size = options.Size,
            BackingFile = options.BackingFile,
            BackingFormat = options.BackingFormat,
            _options = options,
            _tableSizeGiven = o.TableSize != null,
        };
    }

    /// <summary>qemu-img's line: cluster_size always, table_size only when given.</summary>
    public override string Describe(string fileName)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Formatting '{fileName}', fmt=qed size={Size}");
        if (_options.BackingFile != null)
            sb.Append(" backing_file=").Append(_options.BackingFile);
        if (_options.BackingFormat != null)
            sb.Append(" backing_fmt=").Append(_options.BackingFormat);
        sb.Append(CultureInfo.InvariantCulture, $" cluster_size={_options.ClusterSize}");
        if (_tableSizeGiven)
            sb.Append(CultureInfo.InvariantCulture, $" table_size={_options.TableSize}");
        return sb.ToString();
    }

    public override void Validate() => QedCreator.Validate(_options);

    public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) =>
        QedCreator.CreateAsync(path, _options, cancellationToken);
}
