using System.Globalization;
using SharpBlock.Errors;
using SharpBlock.Options;

namespace SharpBlock.Drivers.Creation;

/// <summary>
/// The -o values a user gave, by name, as text; read by type through a format's generated reader (see the
/// image-*.qapi schema files). <see cref="Check"/> refuses unknown names and values of the wrong type with
/// qemu-img's words before anything is created.
/// </summary>
public sealed class ImageOptionValues
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    /// <summary>What a generated reader needs to turn a wire name into a schema enum.</summary>
    public delegate bool EnumParser<T>(string? text, out T value);

    public ImageOptionValues()
    {
    }

    /// <summary>Several -o lists accumulate; a name given again keeps its last value, as with qemu-img.</summary>
    public static ImageOptionValues Parse(IEnumerable<string> lists)
    {
        var v = new ImageOptionValues();
        foreach (string list in lists)
        {
            foreach (var (key, value) in Keyval.Pairs(list))
                v._values[key] = value;
        }

        return v;
    }

    /// <summary>True when one item of the -o lists is "help" or "?": print the options instead of acting.</summary>
    public static bool HelpRequested(IEnumerable<string> lists)
    {
        foreach (string list in lists)
        {
            foreach (string item in Keyval.Split(list))
            {
                if (item is "help" or "?")
                    return true;
            }
        }

        return false;
    }

    public IEnumerable<string> Names => _values.Keys;

    public int Count => _values.Count;

    public bool Has(string name) => _values.ContainsKey(name);

    public string? Get(string name) => _values.GetValueOrDefault(name);

    public void Set(string name, string value) => _values[name] = value;

    public void Remove(string name) => _values.Remove(name);

    /// <summary>Refuses names outside <paramref name="known"/> and values that do not parse as their type.</summary>
    public void Check(IReadOnlyList<ImageOption> known)
    {
        foreach (var (name, _) in _values)
        {
            var option = ImageOption.Find(known, name);
            if (option == null)
                throw new BlockException(Errno.EINVAL, $"Invalid parameter '{name}'");
            switch (option.Type)
            {
                case ImageOptionType.Size:
                    _ = Size(name);
                    break;
                case ImageOptionType.Number:
                    _ = Number(name);
                    break;
                case ImageOptionType.Bool:
                    _ = Bool(name);
                    break;
            }
        }
    }

    public string? Str(string name) => Get(name);

    public ulong? Size(string name)
    {
        if (Get(name) is not { } text)
            return null;
        return SizeParser.TryParse(text, out ulong v)
            ? v
            : throw new BlockException(Errno.EINVAL, $"Parameter '{name}' expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.");
    }

    public long? Number(string name)
    {
        if (Get(name) is not { } text)
            return null;
        return long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v)
            ? v
            : throw new BlockException(Errno.EINVAL, $"Parameter '{name}' expects a number");
    }

    public bool? Bool(string name) => Get(name) switch
    {
        null => null,
        "on" or "yes" or "true" or "y" => true,
        "off" or "no" or "false" or "n" => false,
        _ => throw new BlockException(Errno.EINVAL, $"Parameter '{name}' expects 'on' or 'off'"),
    };

    public T? Enum<T>(string name, EnumParser<T> parse)
        where T : struct
    {
        if (Get(name) is not { } text)
            return null;
        return parse(text, out T v) ? v : throw new BlockException(Errno.EINVAL, $"Parameter '{name}' does not accept value '{text}'");
    }
}
