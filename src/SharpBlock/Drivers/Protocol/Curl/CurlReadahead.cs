using System.Buffers;

namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>
/// The readahead windows of one curl node. A read smaller than the readahead that no window holds fetches a
/// whole window starting at its offset; later reads inside that window (already fetched or still arriving)
/// are served from it, so a format on top that reads a header, then a table, then a cluster costs one round
/// trip per window instead of one per read. Reads of a window or more go to the server directly, several at
/// once if the caller sends several. At most <see cref="CurlLimits.CachedWindows"/> windows are kept; the
/// least recently used idle one makes room.
/// </summary>
internal sealed class CurlReadahead
{
    private readonly Func<long, Memory<byte>, Task> _fetch;
    private readonly int _windowSize;
    private readonly long _length;
    private readonly List<Window> _windows = [];
    private readonly Lock _lock = new();
    private long _clock;

    /// <param name="fetch">reads bytes at an offset from the server, throwing on failure</param>
    /// <param name="windowSize">the readahead: bytes one window holds</param>
    /// <param name="length">the file size, which no window passes</param>
    public CurlReadahead(Func<long, Memory<byte>, Task> fetch, int windowSize, long length)
    {
        _fetch = fetch;
        _windowSize = windowSize;
        _length = length;
    }

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        if (buffer.Length >= _windowSize)
        {
            await _fetch(offset, buffer).ConfigureAwait(false);
            return;
        }

        var w = Acquire(offset, buffer.Length);
        try
        {
            await w.Ready.ConfigureAwait(false);
            w.Data.AsSpan((int)(offset - w.Start), buffer.Length).CopyTo(buffer.Span);
        }
        finally
        {
            Release(w);
        }
    }

    /// <summary>Drops every window (the node closes); buffers still in use go back when their readers finish.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            foreach (var w in _windows)
            {
                w.Evicted = true;
                if (w.Users == 0)
                    ArrayPool<byte>.Shared.Return(w.Data);
            }

            _windows.Clear();
        }
    }

    private Window Acquire(long offset, int length)
    {
        Window? w;
        lock (_lock)
        {
            foreach (var c in _windows)
            {
                if (c.Start <= offset && offset + length <= c.Start + c.Length && !c.Failed)
                {
                    c.Users++;
                    c.LastUse = ++_clock;
                    return c;
                }
            }

            MakeRoom();
            int size = (int)Math.Min(_windowSize, _length - offset);
            w = new Window(offset, size, ArrayPool<byte>.Shared.Rent(size)) { Users = 1, LastUse = ++_clock };
            _windows.Add(w);
        }

        // Started outside the lock; readers that find the window meanwhile wait on its completion source.
        _ = FetchWindowAsync(w);
        return w;
    }

    private async Task FetchWindowAsync(Window w)
    {
        try
        {
            await _fetch(w.Start, w.Data.AsMemory(0, w.Length)).ConfigureAwait(false);
            w.Done.SetResult();
        }
        catch (Exception ex)
        {
            // A failed window must not answer the next read of its range: that read asks the server again.
            lock (_lock)
            {
                w.Failed = true;
                if (_windows.Remove(w))
                    w.Evicted = true;
            }

            w.Done.SetException(ex);
        }
    }

    private void MakeRoom()
    {
        while (_windows.Count >= CurlLimits.CachedWindows)
        {
            Window? oldest = null;
            foreach (var c in _windows)
            {
                if (c.Users == 0 && (oldest == null || c.LastUse < oldest.LastUse))
                    oldest = c;
            }

            // Every window is being read: keep them all, the new one goes beyond the bound until they finish.
            if (oldest == null)
                return;
            _windows.Remove(oldest);
            ArrayPool<byte>.Shared.Return(oldest.Data);
        }
    }

    private void Release(Window w)
    {
        lock (_lock)
        {
            w.Users--;
            if (w.Users == 0 && w.Evicted)
                ArrayPool<byte>.Shared.Return(w.Data);
        }
    }

    private sealed class Window(long start, int length, byte[] data)
    {
        public long Start { get; } = start;
        public int Length { get; } = length;
        public byte[] Data { get; } = data;
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task Ready => Done.Task;
        public int Users { get; set; }
        public long LastUse { get; set; }
        public bool Failed { get; set; }
        public bool Evicted { get; set; }
    }
}
