using System.Buffers;
using System.Globalization;
using System.Text.Json;
using SharpBlock.Qmp.Protocol;

namespace SharpBlock.Qmp.Schema;

/// <summary>
/// QEMU's command-line form of structured options: key=value pairs separated by commas (",," is a literal
/// comma), dotted keys for nested objects and numeric keys for list elements, so
/// "driver=raw,file.driver=file,file.filename=a.img" means {"driver": "raw", "file": {...}}. Values stay
/// strings; the schema readers convert them in keyval mode.
/// </summary>
public static class KeyvalParser
{
    /// <summary>Parses the text into a JSON document (objects of strings, lists where keys are numbers).</summary>
    public static JsonDocument Parse(string text)
    {
        var root = new SortedTree();
        int i = 0;
        while (i < text.Length)
        {
            int eq = text.IndexOf('=', i);
            if (eq < 0)
                throw new QmpException($"Expected '=' after parameter '{text[i..]}'");
            string key = text[i..eq];
            if (key.Length == 0)
                throw new QmpException("Invalid parameter ''");
            var value = new System.Text.StringBuilder();
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

    private sealed class SortedTree
    {
        private readonly List<KeyValuePair<string, object>> _members = [];

        public void Set(string[] parts, int index, string value, string fullKey)
        {
            string part = parts[index];
            if (part.Length == 0)
                throw new QmpException($"Invalid parameter '{fullKey}'");
            int at = _members.FindIndex(m => m.Key == part);
            if (index == parts.Length - 1)
            {
                if (at >= 0)
                    throw new QmpException($"Parameter '{fullKey}' is set more than once");
                _members.Add(new(part, value));
                return;
            }

            SortedTree child;
            if (at < 0)
            {
                child = new SortedTree();
                _members.Add(new(part, child));
            }
            else
            {
                child = _members[at].Value as SortedTree
                    ?? throw new QmpException($"Parameter '{string.Join('.', parts, 0, index + 1)}' used inconsistently");
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
            if (v is SortedTree t)
                t.Write(w);
            else
                w.WriteStringValue((string)v);
        }
    }
}
