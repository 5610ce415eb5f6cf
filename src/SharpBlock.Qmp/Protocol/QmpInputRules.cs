using System.Buffers;
using System.Globalization;
using System.Text.Json;

namespace SharpBlock.Qmp.Protocol;

/// <summary>
/// What QEMU's JSON parser refuses and System.Text.Json accepts: a key given twice in one object (at any
/// depth; "last wins" would let a client smuggle a second value past whoever checked the first) and a
/// \u escape that is half of a surrogate pair, or bytes in a string that are not UTF-8 (no text: such a
/// string could neither be used as a name nor written back in a reply). The answers carry QEMU's wording.
/// </summary>
public static class QmpInputRules
{
    public const string DuplicateKey = "JSON parse error, duplicate key";

    /// <summary>The parse error QEMU would give for this well-formed JSON text, or null when it is acceptable.</summary>
    public static string? FindProblem(ReadOnlySequence<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = QmpFrameScanner.MaxDepth + 1 });
        // One set of seen keys per open object; null for arrays.
        var keys = new Stack<HashSet<string>?>();
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    keys.Push(new HashSet<string>(StringComparer.Ordinal));
                    break;
                case JsonTokenType.StartArray:
                    keys.Push(null);
                    break;
                case JsonTokenType.EndObject:
                case JsonTokenType.EndArray:
                    keys.Pop();
                    break;
                case JsonTokenType.PropertyName:
                    if (StringProblem(ref reader) is { } bad)
                        return bad;
                    if (!keys.Peek()!.Add(reader.GetString()!))
                        return DuplicateKey;
                    break;
                case JsonTokenType.String:
                    if (StringProblem(ref reader) is { } badValue)
                        return badValue;
                    break;
            }
        }

        return null;
    }

    private static string? StringProblem(ref Utf8JsonReader reader)
    {
        ReadOnlySpan<byte> raw = reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan;
        // The reader leaves string contents unchecked until they are decoded.
        if (!System.Text.Unicode.Utf8.IsValid(raw))
            return "JSON parse error, invalid UTF-8 sequence in string";
        if (!reader.ValueIsEscaped)
            return null;
        for (int i = 0; i < raw.Length; i++)
        {
            if (raw[i] != '\\')
                continue;
            if (raw[i + 1] != 'u')
            {
                i++;
                continue;
            }

            int unit = Hex4(raw.Slice(i + 2, 4));
            if (unit is >= 0xD800 and <= 0xDBFF && i + 12 <= raw.Length && raw[i + 6] == '\\' && raw[i + 7] == 'u'
                && Hex4(raw.Slice(i + 8, 4)) is >= 0xDC00 and <= 0xDFFF)
            {
                i += 11;
                continue;
            }

            if (unit is >= 0xD800 and <= 0xDFFF)
                return $"JSON parse error, {System.Text.Encoding.ASCII.GetString(raw.Slice(i, 6))} is not a valid Unicode character";
            i += 5;
        }

        return null;
    }

    private static int Hex4(ReadOnlySpan<byte> digits) =>
        int.Parse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
}
