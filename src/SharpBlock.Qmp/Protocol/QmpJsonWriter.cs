using System.Buffers;
using System.Globalization;
using System.Text;

namespace SharpBlock.Qmp.Protocol;

/// <summary>
/// Writes JSON the way QEMU's monitor does: ": " after a key, ", " between members, non-ASCII escaped as
/// \uXXXX. Clients and scripts that match on QEMU's exact text therefore see the same text from us.
/// </summary>
public sealed class QmpJsonWriter
{
    private readonly ArrayBufferWriter<byte> _out;
    private readonly Stack<bool> _first = new();
    private bool _afterName;

    public QmpJsonWriter(ArrayBufferWriter<byte> output) => _out = output;

    public ReadOnlyMemory<byte> WrittenMemory => _out.WrittenMemory;

    private void Raw(string s)
    {
        int n = Encoding.ASCII.GetByteCount(s);
        Encoding.ASCII.GetBytes(s, _out.GetSpan(n));
        _out.Advance(n);
    }

    private void Raw(char c)
    {
        _out.GetSpan(1)[0] = (byte)c;
        _out.Advance(1);
    }

    private void BeforeValue()
    {
        if (_afterName)
        {
            _afterName = false;
            return;
        }

        if (_first.Count > 0)
        {
            if (!_first.Peek())
                Raw(", ");
            _first.Pop();
            _first.Push(false);
        }
    }

    public void WriteStartObject()
    {
        BeforeValue();
        Raw('{');
        _first.Push(true);
    }

    public void WriteEndObject()
    {
        _first.Pop();
        Raw('}');
    }

    public void WriteStartArray()
    {
        BeforeValue();
        Raw('[');
        _first.Push(true);
    }

    public void WriteEndArray()
    {
        _first.Pop();
        Raw(']');
    }

    public void WritePropertyName(string name)
    {
        if (!_first.Peek())
            Raw(", ");
        _first.Pop();
        _first.Push(false);
        WriteQuoted(name);
        Raw(": ");
        _afterName = true;
    }

    public void WriteStringValue(string value)
    {
        BeforeValue();
        WriteQuoted(value);
    }

    public void WriteNumberValue(long value)
    {
        BeforeValue();
        Raw(value.ToString(CultureInfo.InvariantCulture));
    }

    public void WriteNumberValue(ulong value)
    {
        BeforeValue();
        Raw(value.ToString(CultureInfo.InvariantCulture));
    }

    public void WriteNumberValue(double value)
    {
        BeforeValue();
        Raw(double.IsFinite(value) ? value.ToString("R", CultureInfo.InvariantCulture) : "0");
    }

    public void WriteBooleanValue(bool value)
    {
        BeforeValue();
        Raw(value ? "true" : "false");
    }

    public void WriteNullValue()
    {
        BeforeValue();
        Raw("null");
    }

    /// <summary>Copies an already-parsed JSON value (used to echo a command's 'id' back as given).</summary>
    public void WriteRawValue(System.Text.Json.JsonElement value)
    {
        switch (value.ValueKind)
        {
            case System.Text.Json.JsonValueKind.Object:
                WriteStartObject();
                foreach (var p in value.EnumerateObject())
                {
                    WritePropertyName(p.Name);
                    WriteRawValue(p.Value);
                }

                WriteEndObject();
                break;
            case System.Text.Json.JsonValueKind.Array:
                WriteStartArray();
                foreach (var e in value.EnumerateArray())
                    WriteRawValue(e);
                WriteEndArray();
                break;
            case System.Text.Json.JsonValueKind.String:
                WriteStringValue(value.GetString()!);
                break;
            case System.Text.Json.JsonValueKind.Number:
                BeforeValue();
                Raw(value.GetRawText());
                break;
            case System.Text.Json.JsonValueKind.True:
                WriteBooleanValue(true);
                break;
            case System.Text.Json.JsonValueKind.False:
                WriteBooleanValue(false);
                break;
            default:
                WriteNullValue();
                break;
        }
    }

    /// <summary>
    /// Writes a value of the schema's 'any' type: a JsonElement as given, or a plain string, integer or
    /// boolean; anything else (and null) as JSON null.
    /// </summary>
    public void WriteAnyValue(object? value)
    {
        switch (value)
        {
            case System.Text.Json.JsonElement e:
                WriteRawValue(e);
                break;
            case string s:
                WriteStringValue(s);
                break;
            case long l:
                WriteNumberValue(l);
                break;
            case bool b:
                WriteBooleanValue(b);
                break;
            default:
                WriteNullValue();
                break;
        }
    }

    private void WriteQuoted(string s)
    {
        Raw('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': Raw("\\\""); break;
                case '\\': Raw("\\\\"); break;
                case '\b': Raw("\\b"); break;
                case '\f': Raw("\\f"); break;
                case '\n': Raw("\\n"); break;
                case '\r': Raw("\\r"); break;
                case '\t': Raw("\\t"); break;
                default:
                    if (c < 0x20 || c >= 0x7f)
                        Raw("\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        Raw(c);
                    break;
            }
        }

        Raw('"');
    }
}
