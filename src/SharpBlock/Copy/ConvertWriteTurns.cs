namespace SharpBlock.Copy;

/// <summary>
/// Hands out turns to write in the order pieces were claimed: convert's workers read (and compress) in
/// parallel, but without -W the target sees its writes in ascending order, so a target that only appends
/// well (a pipe-like NBD server, a sequentially allocated qcow2) gets what it expects.
/// </summary>
internal sealed class ConvertWriteTurns
{
    private readonly object _lock = new();
    private readonly Dictionary<long, TaskCompletionSource> _waiters = [];
    private long _current;
    private bool _failed;

    /// <summary>Completes when every piece numbered below turn has written.</summary>
    public ValueTask WaitAsync(long turn)
    {
        TaskCompletionSource tcs;
        lock (_lock)
        {
            if (_failed)
                throw new OperationCanceledException("another convert worker failed");
            if (turn == _current)
                return default;
            // Continuations run on the pool, not inside Done's caller, which is itself a writer.
            tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add(turn, tcs);
        }

        return new ValueTask(tcs.Task);
    }

    /// <summary>Passes the turn on; called once per turn, after its write.</summary>
    public void Done(long turn)
    {
        TaskCompletionSource? next;
        lock (_lock)
        {
            _current = turn + 1;
            _waiters.Remove(_current, out next);
        }

        next?.TrySetResult();
    }

    /// <summary>Wakes every waiter with a cancellation: a piece that failed will never pass its turn on.</summary>
    public void Fail()
    {
        List<TaskCompletionSource> all;
        lock (_lock)
        {
            _failed = true;
            all = [.. _waiters.Values];
            _waiters.Clear();
        }

        foreach (var t in all)
            t.TrySetCanceled();
    }
}
