using System.Buffers;
using System.Text;
using System.Text.Json;
using SharpBlock.Errors;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A QMP byte stream through the frame scanner, twice: whole, and in pieces whose size the first byte
/// picks (each piece appended to what the scanner left, as the session's pipe does). Both must cut the
/// same frames. Each frame then goes through the JSON reader with the session's limits, the session's
/// envelope rules, and every argument reader of the schema that takes an object; text that is not JSON
/// goes through the keyval parser (the -blockdev form) and the BlockdevOptions reader in keyval mode.
/// No command runs: the handlers touch files and sockets, and they are not parsers.
/// </summary>
public static class QmpTarget
{
    private static readonly Func<JsonElement, object>[] ArgumentReaders =
    [
        e => QapiCodec.ReadBlockdevAddArguments(e, "", false),
        e => QapiCodec.ReadBlockdevOptions(e, "", false),
        e => QapiCodec.ReadBlockResizeArguments(e, "", false),
        e => QapiCodec.ReadBlockCommitArguments(e, "", false),
        e => QapiCodec.ReadBlockStreamArguments(e, "", false),
        e => QapiCodec.ReadDriveMirrorArguments(e, "", false),
        e => QapiCodec.ReadBlockSetIoThrottleArguments(e, "", false),
        e => QapiCodec.ReadNbdServerStartArguments(e, "", false),
        e => QapiCodec.ReadNbdServerAddArguments(e, "", false),
        e => QapiCodec.ReadChangeArguments(e, "", false),
        e => QapiCodec.ReadEjectArguments(e, "", false),
        e => QapiCodec.ReadBlockJobSetSpeedArguments(e, "", false),
        e => QapiCodec.ReadBlockdevSnapshotDeleteInternalSyncArguments(e, "", false),
    ];

    public static Task RunAsync(byte[] input, FuzzContext context)
    {
        _ = context;
        var whole = Scan([input]);
        int step = input.Length == 0 ? 1 : 1 + (input[0] % 17);
        var pieces = new List<ReadOnlyMemory<byte>>();
        for (int i = 0; i < input.Length; i += step)
            pieces.Add(input.AsMemory(i, Math.Min(step, input.Length - i)));
        var split = Scan(pieces);
        if (whole.Count != split.Count)
            throw new FuzzAssertionException($"the scanner cut {whole.Count} frames from the whole input but {split.Count} from pieces of {step}");
        for (int i = 0; i < whole.Count; i++)
        {
            if (!whole[i].AsSpan().SequenceEqual(split[i]))
                throw new FuzzAssertionException($"frame {i} differs between the whole input and pieces of {step}");
            Parse(whole[i]);
        }

        return Task.CompletedTask;
    }

    /// <summary>Frames as the session would see them; a too-large or too-deep message counts as an empty frame.</summary>
    private static List<byte[]> Scan(List<ReadOnlyMemory<byte>> pieces)
    {
        var frames = new List<byte[]>();
        var scanner = new QmpFrameScanner();
        var pending = new List<ReadOnlyMemory<byte>>();
        foreach (var piece in pieces)
        {
            pending.Add(piece);
            var buffer = SequenceBuilder.From(pending);
            while (true)
            {
                var status = scanner.TryReadFrame(ref buffer, out var frame);
                if (status == QmpFrameStatus.NeedMore)
                    break;
                frames.Add(status == QmpFrameStatus.Frame ? frame.ToArray() : []);
            }

            // What the scanner did not consume stays for the next read, as PipeReader.AdvanceTo keeps it.
            pending.Clear();
            foreach (var m in buffer)
                pending.Add(m);
        }

        return frames;
    }

    private static void Parse(byte[] frame)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(frame, new JsonDocumentOptions { MaxDepth = QmpFrameScanner.MaxDepth + 1 });
        }
        catch (JsonException)
        {
            Keyval(frame);
            return;
        }

        // The session refuses what QEMU's parser refuses before it reads a member (duplicate keys, broken
        // strings); the target does the same, or it would read strings the session never lets through.
        if (QmpInputRules.FindProblem(new System.Buffers.ReadOnlySequence<byte>(frame)) != null)
        {
            doc.Dispose();
            Keyval(frame);
            return;
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return;
            foreach (var p in root.EnumerateObject())
            {
                if (p.Name == "execute" && p.Value.ValueKind == JsonValueKind.String)
                    _ = p.Value.GetString();
                else if (p.Name == "arguments" && p.Value.ValueKind == JsonValueKind.Object)
                    ReadArguments(p.Value);
            }
        }
    }

    private static void ReadArguments(JsonElement args)
    {
        foreach (var read in ArgumentReaders)
        {
            try
            {
                _ = read(args);
            }
            catch (QmpException)
            {
            }
        }
    }

    private static void Keyval(byte[] frame)
    {
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(frame);
        }
        catch (DecoderFallbackException)
        {
            return;
        }

        try
        {
            using var doc = SharpBlock.Options.Keyval.ParseTree(text);
            _ = QapiCodec.ReadBlockdevOptions(doc.RootElement, "", true);
        }
        catch (QmpException)
        {
        }
        catch (BlockException)
        {
        }
    }
}
