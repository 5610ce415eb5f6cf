using System.Text;
using System.Text.Json;
using SharpBlock.Errors;
using SharpBlock.Options;
using SharpBlock.Qmp.Protocol;

namespace SharpBlock.Cli.Img;

/// <summary>
/// qemu-img's "json:{...}" file names: the options of the image's node as a JSON object, nested
/// ({"file": {"driver": "https", ...}}) or with dotted keys ({"file.driver": "https", "file.sslverify": "off"}),
/// the two freely mixed, values as JSON or as strings (QEMU flattens the object and reads every value by its
/// type). So the object is flattened to QEMU's key=value form here and read by the one keyval reader.
/// </summary>
internal static class ImgJsonFilename
{
    public const string Prefix = "json:";

    public static bool Is(string name) => name.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>The options tree as keyval-mode JSON (every leaf a string).</summary>
    public static JsonDocument Parse(string name)
    {
        string json = name[Prefix.Length..];
        byte[] utf8 = Encoding.UTF8.GetBytes(json);
        if (QmpInputRules.FindProblem(new System.Buffers.ReadOnlySequence<byte>(utf8)) is { } problem)
            throw new BlockException(Errno.EINVAL, "Could not parse the JSON options: " + problem);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(utf8);
        }
        catch (JsonException)
        {
            throw new BlockException(Errno.EINVAL, "Could not parse the JSON options");
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new BlockException(Errno.EINVAL, "Could not parse the JSON options");
            var text = new StringBuilder();
            Flatten(doc.RootElement, "", text);
            return Keyval.ParseTree(text.ToString());
        }
    }

    private static void Flatten(JsonElement e, string prefix, StringBuilder text)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                    Flatten(p.Value, prefix + p.Name + ".", text);
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in e.EnumerateArray())
                    Flatten(item, prefix + (i++).ToString(System.Globalization.CultureInfo.InvariantCulture) + ".", text);
                break;
            default:
                string value = e.ValueKind switch
                {
                    JsonValueKind.String => e.GetString()!,
                    JsonValueKind.True => "on",
                    JsonValueKind.False => "off",
                    JsonValueKind.Null => throw new BlockException(Errno.EINVAL, $"Invalid value null for '{prefix.TrimEnd('.')}'"),
                    _ => e.GetRawText(),
                };
                if (text.Length > 0)
                    text.Append(',');
                text.Append(prefix.AsSpan(0, prefix.Length - 1)).Append('=').Append(value.Replace(",", ",,", StringComparison.Ordinal));
                break;
        }
    }
}
