using System.Buffers;

namespace SharpBlock.Qmp.Protocol;

/// <summary>What one call of <see cref="QmpFrameScanner.TryReadFrame"/> found.</summary>
public enum QmpFrameStatus
{
    /// <summary>No complete message yet; call again with more bytes.</summary>
    NeedMore,

    /// <summary>One complete JSON value (or one malformed token) was cut off the front of the buffer.</summary>
    Frame,

    /// <summary>The message grew past <see cref="QmpFrameScanner.MaxFrameBytes"/>; its bytes are being skipped.</summary>
    TooLarge,

    /// <summary>The message nests deeper than <see cref="QmpFrameScanner.MaxDepth"/>; its bytes are being skipped.</summary>
    TooDeep,
}

/// <summary>
/// Splits a QMP byte stream into messages without parsing them. Clients send JSON values back to back,
/// with or without newlines, so a message ends where its outermost brace or bracket closes (strings and
/// escapes respected); a bare word at the top level ends at whitespace or punctuation and is handed on
/// so the parser can name the error. Limits are checked while scanning, before anything is buffered past
/// them: an over-long or over-deep message is skipped to its end and reported once, and the session goes on.
/// The scanner remembers how far it got, so each byte is looked at once however the input is split.
/// </summary>
public struct QmpFrameScanner
{
    public const int MaxFrameBytes = 16 << 20;
    public const int MaxDepth = 1024;

    private long _scanned;
    private int _depth;
    private bool _inString;
    private bool _escape;
    private bool _bare;
    private bool _discarding;

    public QmpFrameStatus TryReadFrame(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> frame)
    {
        frame = default;
        if (_scanned == 0 && !_discarding)
        {
            // Whitespace between messages belongs to no message.
            var reader = new SequenceReader<byte>(buffer);
            reader.AdvancePastAny((byte)' ', (byte)'\t', (byte)'\r', (byte)'\n');
            buffer = buffer.Slice(reader.Position);
            if (buffer.IsEmpty)
                return QmpFrameStatus.NeedMore;
        }

        long index = _scanned;
        foreach (var segment in buffer.Slice(_scanned))
        {
            var span = segment.Span;
            for (int i = 0; i < span.Length; i++, index++)
            {
                byte b = span[i];
                if (_inString)
                {
                    if (_escape)
                        _escape = false;
                    else if (b == '\\')
                        _escape = true;
                    else if (b == '"')
                    {
                        _inString = false;
                        if (_depth == 0)
                            return Complete(ref buffer, out frame, index + 1);
                    }
                }
                else if (_bare)
                {
                    if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' or (byte)'{' or (byte)'[' or (byte)'}' or (byte)']' or (byte)'"')
                        return Complete(ref buffer, out frame, index);
                }
                else
                {
                    switch (b)
                    {
                        case (byte)'"':
                            _inString = true;
                            break;
                        case (byte)'{':
                        case (byte)'[':
                            if (++_depth > MaxDepth && !_discarding)
                                return StartDiscard(ref buffer, index + 1, QmpFrameStatus.TooDeep);
                            break;
                        case (byte)'}':
                        case (byte)']':
                            // A stray closer at the top level is a message of its own (the parser rejects it).
                            if (_depth <= 1)
                            {
                                _depth = 0;
                                return Complete(ref buffer, out frame, index + 1);
                            }

                            _depth--;
                            break;
                        default:
                            if (_depth == 0 && b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n'))
                                _bare = true;
                            break;
                    }
                }

                if (!_discarding && index + 1 > MaxFrameBytes)
                    return StartDiscard(ref buffer, index + 1, QmpFrameStatus.TooLarge);
            }
        }

        _scanned = index;
        if (_discarding)
        {
            // Nothing of a discarded message is kept.
            buffer = buffer.Slice(buffer.End);
            _scanned = 0;
        }

        return QmpFrameStatus.NeedMore;
    }

    private QmpFrameStatus Complete(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> frame, long end)
    {
        bool discarded = _discarding;
        frame = discarded ? default : buffer.Slice(0, end);
        buffer = buffer.Slice(end);
        this = default;
        if (!discarded)
            return QmpFrameStatus.Frame;
        // The skipped message is over; look for the next one straight away.
        return TryReadFrame(ref buffer, out frame);
    }

    private QmpFrameStatus StartDiscard(ref ReadOnlySequence<byte> buffer, long consumed, QmpFrameStatus why)
    {
        _discarding = true;
        buffer = buffer.Slice(consumed);
        _scanned = 0;
        return why;
    }
}
