using System.Buffers;
using System.Text.Json;

namespace SharpBlock.Qmp.Protocol;

/// <summary>
/// Turns one frame into a JSON document with the session's limits. System.Text.Json accepts an escaped
/// lone surrogate ("\ud800") and only fails when the string is read, with an InvalidOperationException
/// deep inside a command's argument reader; QEMU rejects such text as a parse error, and so do we, here,
/// where a parse error is expected. Found by the qmp fuzz target.
/// </summary>
public static class QmpJsonReader
{
    public static JsonDocument Parse(ReadOnlySequence<byte> frame)
    {
        var doc = JsonDocument.Parse(frame, new JsonDocumentOptions { MaxDepth = QmpFrameScanner.MaxDepth + 1 });
        try
        {
            CheckStrings(doc.RootElement);
            return doc;
        }
        catch
        {
            doc.Dispose();
            throw;
        }
    }

    private static void CheckStrings(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                Transcode(e);
                break;
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    Transcode(p);
                    CheckStrings(p.Value);
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in e.EnumerateArray())
                    CheckStrings(item);
                break;
        }
    }

    private static void Transcode(JsonElement e)
    {
        try
        {
            _ = e.GetString();
        }
        catch (InvalidOperationException ex)
        {
            throw new JsonException("invalid escape in a string: not valid UTF-16", ex);
        }
    }

    private static void Transcode(JsonProperty p)
    {
        try
        {
            _ = p.Name;
        }
        catch (InvalidOperationException ex)
        {
            throw new JsonException("invalid escape in a member name: not valid UTF-16", ex);
        }
    }
}
