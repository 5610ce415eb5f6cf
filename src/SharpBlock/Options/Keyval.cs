using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using SharpBlock.Errors;

namespace SharpBlock.Options;

/// <summary>
/// QEMU's command-line form of options, the one parser for all of them (-o, --object, --image-opts,
/// --blockdev, --export): items separated by commas, ",," a literal comma, each item key=value. Dotted keys
/// name nested objects and numeric keys list elements when the text becomes a tree
/// ("driver=raw,file.driver=file" is {"driver": "raw", "file": {"driver": "file"}}). Values stay strings;
/// whoever reads them converts them by type. Mistakes are <see cref="BlockException"/>s with EINVAL.
/// </summary>
public static class Keyval
{
    /// <summary>The items between single commas; ",," stands for a comma inside an item.</summary>
    public static List<string> Split(string text)
    {
        var parts = new List<string>();
        var cur = new StringBuilder();
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == ',')
            {
                if (i + 1 < text.Length && text[i + 1] == ',')
                {
                    cur.Append(',');
                    i++;
                    continue;
                }

                parts.Add(cur.ToString());
                cur.Clear();
                continue;
            }

            cur.Append(text[i]);
        }

        parts.Add(cur.ToString());
        return parts;
    }

    /// <summary>
    /// The key=value pairs in order. A first item without '=' is the value of <paramref name="implicitKey"/>
    /// when one is given ("secret,id=s0" is qom-type=secret); empty items are skipped.
    /// </summary>
    public static List<KeyValuePair<string, string>> Pairs(string text, string? implicitKey = null)
    {
        var items = Split(text);
        var pairs = new List<KeyValuePair<string, string>>(items.Count);
        for (int i = 0; i < items.Count; i++)
        {
            string item = items[i];
            if (item.Length == 0)
                continue;
            int eq = item.IndexOf('=', StringComparison.Ordinal);
            if (eq < 0)
            {
                if (i == 0 && implicitKey != null)
                {
                    pairs.Add(new(implicitKey, item));
                    continue;
                }

                throw Invalid($"Invalid parameter '{item}'");
            }

            pairs.Add(new(item[..eq], item[(eq + 1)..]));
        }

        return pairs;
    }

    /// <summary>The pairs as a dictionary; a key given twice keeps its last value, as QEMU's -o does.</summary>
    public static Dictionary<string, string> Dictionary(string text, string? implicitKey = null)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in Pairs(text, implicitKey))
            d[key] = value;
        return d;
    }

    /// <summary>
    /// The text as a JSON tree of strings, for a schema reader in keyval mode. Unlike <see cref="Pairs"/>,
    /// every item must be key=value and a key may appear once.
    /// </summary>
    public static JsonDocument ParseTree(string text)
    {
        var root = new Tree();
        int i = 0;
        while (i < text.Length)
        {
            int eq = text.IndexOf('=', i);
            if (eq < 0)
                throw Invalid($"Expected '=' after parameter '{text[i..]}'");
            string key = text[i..eq];
            if (key.Length == 0)
                throw Invalid("Invalid parameter ''");
            var value = new StringBuilder();
            int j = eq + 1;
            while (j < text.Length)
            {
                if (text[j] == ',')
                {
                    if (j + 1 < text.Length && text[j + 1] == ',')
                    {
                        value.Append(',');
                        j += 2;
                        continue;
                    }

                    break;
                }

                value.Append(text[j++]);
            }

            root.Set(key.Split('.'), 0, value.ToString(), key);
            i = j + 1;
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
            root.Write(w);
        return JsonDocument.Parse(buffer.WrittenMemory);
    }

    private static BlockException Invalid(string message) => new(Errno.EINVAL, message);

    /// <summary>Members in the order they were first named, so readers check them in the user's order.</summary>
    private sealed class Tree
    {
        private readonly List<KeyValuePair<string, object>> _members = [];

        public void Set(string[] parts, int index, string value, string fullKey)
        {
            string part = parts[index];
            if (part.Length == 0)
                throw Invalid($"Invalid parameter '{fullKey}'");
            int at = _members.FindIndex(m => m.Key == part);
            if (index == parts.Length - 1)
            {
                if (at >= 0)
                    throw Invalid($"Parameter '{fullKey}' is set more than once");
                _members.Add(new(part, value));
                return;
            }

            Tree child;
            if (at < 0)
            {
                child = new Tree();
                _members.Add(new(part, child));
            }
            else
            {
                child = _members[at].Value as Tree
                    ?? throw Invalid($"Parameter '{string.Join('.', parts, 0, index + 1)}' used inconsistently");
            }

            child.Set(parts, index + 1, value, fullKey);
        }

        /// <summary>An object whose keys are exactly 0..n-1 becomes a list, as QEMU's keyval does.</summary>
        private bool IsList()
        {
            if (_members.Count == 0)
                return false;
            for (int k = 0; k < _members.Count; k++)
            {
                if (!_members.Exists(m => m.Key == k.ToString(CultureInfo.InvariantCulture)))
                    return false;
            }

            return true;
        }

        public void Write(Utf8JsonWriter w)
        {
            if (IsList())
            {
                w.WriteStartArray();
                for (int k = 0; k < _members.Count; k++)
                    WriteValue(w, _members.Find(m => m.Key == k.ToString(CultureInfo.InvariantCulture)).Value);
                w.WriteEndArray();
                return;
            }

            w.WriteStartObject();
            foreach (var m in _members)
            {
                w.WritePropertyName(m.Key);
                WriteValue(w, m.Value);
            }

            w.WriteEndObject();
        }

        private static void WriteValue(Utf8JsonWriter w, object v)
        {
            if (v is Tree t)
                t.Write(w);
            else
                w.WriteStringValue((string)v);
        }
    }
}
