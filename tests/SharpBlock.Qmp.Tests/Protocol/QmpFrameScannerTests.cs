using System.Buffers;
using System.Text;
using SharpBlock.Qmp.Protocol;

namespace SharpBlock.Qmp.Tests.Protocol;

public class QmpFrameScannerTests
{
    private const string Stream =
        "{\"execute\": \"qmp_capabilities\"}\r\n" +
        "  {\"execute\":\"x\",\"arguments\":{\"s\":\"a}\\\"{[\",\"l\":[1,{\"n\":[]}]}}" +
        "{\"id\":1}\n" +
        "garbage {\"a\":\"\\\\\"} ] \"str\"";

    private static readonly string[] Expected =
    [
        "{\"execute\": \"qmp_capabilities\"}",
        "{\"execute\":\"x\",\"arguments\":{\"s\":\"a}\\\"{[\",\"l\":[1,{\"n\":[]}]}}",
        "{\"id\":1}",
        "garbage",
        "{\"a\":\"\\\\\"}",
        "]",
        "\"str\"",
    ];

    /// <summary>Feeds the bytes in the given chunks, keeping unconsumed bytes as a pipe would.</summary>
    private static List<string> Feed(byte[] data, IEnumerable<int> chunkSizes)
    {
        var frames = new List<string>();
        var scanner = new QmpFrameScanner();
        var pending = new List<byte>();
        int pos = 0;
        foreach (int size in chunkSizes)
        {
            int n = Math.Min(size, data.Length - pos);
            pending.AddRange(data.AsSpan(pos, n).ToArray());
            pos += n;
            var buffer = new ReadOnlySequence<byte>(pending.ToArray());
            while (true)
            {
                var status = scanner.TryReadFrame(ref buffer, out var frame);
                if (status == QmpFrameStatus.NeedMore)
                    break;
                Assert.Equal(QmpFrameStatus.Frame, status);
                frames.Add(Encoding.UTF8.GetString(frame.ToArray()));
            }

            pending = [.. buffer.ToArray()];
            if (pos >= data.Length)
                break;
        }

        // A bare word at the very end needs a delimiter; the stream above ends with a string instead.
        return frames;
    }

    [Fact]
    public void Whole_stream_yields_each_message()
    {
        var data = Encoding.UTF8.GetBytes(Stream);
        Assert.Equal(Expected, Feed(data, [data.Length]));
    }

    [Fact]
    public void One_byte_at_a_time_yields_the_same_messages()
    {
        var data = Encoding.UTF8.GetBytes(Stream);
        Assert.Equal(Expected, Feed(data, Enumerable.Repeat(1, data.Length)));
    }

    [Fact]
    public void Every_split_point_yields_the_same_messages()
    {
        var data = Encoding.UTF8.GetBytes(Stream);
        for (int split = 1; split < data.Length; split++)
            Assert.Equal(Expected, Feed(data, [split, data.Length]));
    }

    [Fact]
    public void Too_deep_nesting_is_skipped_and_the_next_message_still_parses()
    {
        string deep = new string('[', QmpFrameScanner.MaxDepth + 5) + new string(']', QmpFrameScanner.MaxDepth + 5);
        var data = Encoding.UTF8.GetBytes(deep + "{\"execute\":\"ok\"}");
        var scanner = new QmpFrameScanner();
        var buffer = new ReadOnlySequence<byte>(data);
        Assert.Equal(QmpFrameStatus.TooDeep, scanner.TryReadFrame(ref buffer, out _));
        Assert.Equal(QmpFrameStatus.Frame, scanner.TryReadFrame(ref buffer, out var frame));
        Assert.Equal("{\"execute\":\"ok\"}", Encoding.UTF8.GetString(frame.ToArray()));
    }

    [Fact]
    public void Oversized_message_is_refused_without_buffering_it()
    {
        var scanner = new QmpFrameScanner();
        var chunk = Encoding.UTF8.GetBytes("{\"a\":\"" + new string('x', 1 << 20));
        var buffer = new ReadOnlySequence<byte>(chunk);
        int chunks = 1;
        QmpFrameStatus status;
        // Keep feeding; the scanner must report TooLarge once past the limit, and consume what it skips.
        while ((status = scanner.TryReadFrame(ref buffer, out _)) == QmpFrameStatus.NeedMore)
        {
            Assert.True(chunks * chunk.Length <= QmpFrameScanner.MaxFrameBytes + chunk.Length);
            var more = new byte[buffer.Length + (1 << 20)];
            buffer.CopyTo(more);
            more.AsSpan((int)buffer.Length).Fill((byte)'x');
            buffer = new ReadOnlySequence<byte>(more);
            chunks++;
        }

        Assert.Equal(QmpFrameStatus.TooLarge, status);
        Assert.True(buffer.Length < 2 << 20);
        // The rest of the big string and the end of the object are skipped; then a new message parses.
        var tail = Encoding.UTF8.GetBytes("xxxx\"}{\"execute\":\"next\"}");
        buffer = new ReadOnlySequence<byte>(tail);
        Assert.Equal(QmpFrameStatus.Frame, scanner.TryReadFrame(ref buffer, out var frame));
        Assert.Equal("{\"execute\":\"next\"}", Encoding.UTF8.GetString(frame.ToArray()));
    }
}
