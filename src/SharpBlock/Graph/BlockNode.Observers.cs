using System.Collections.Immutable;

namespace SharpBlock.Graph;

/// <summary>
/// Watches the writes a node receives. Mirror keeps its dirty bitmap with <see cref="AfterWrite"/>; backup
/// copies the old contents away in <see cref="BeforeWriteAsync"/> before they are overwritten.
/// </summary>
public interface IWriteObserver
{
    /// <summary>Runs before a write, write-zeroes or discard of the range reaches the driver.</summary>
    ValueTask BeforeWriteAsync(long offset, long length, CancellationToken cancellationToken);

    /// <summary>Runs after the range was changed (also when the request failed part-way: the range may differ).</summary>
    void AfterWrite(long offset, long length);
}

public abstract partial class BlockNode
{
    // Copied on change so the request path reads it without a lock.
    private ImmutableArray<IWriteObserver> _observers = [];

    public void AddWriteObserver(IWriteObserver observer) =>
        ImmutableInterlocked.Update(ref _observers, static (a, o) => a.Add(o), observer);

    public void RemoveWriteObserver(IWriteObserver observer) =>
        ImmutableInterlocked.Update(ref _observers, static (a, o) => a.Remove(o), observer);

    private async ValueTask NotifyBeforeWriteAsync(long offset, long length, CancellationToken cancellationToken)
    {
        foreach (var o in _observers)
            await o.BeforeWriteAsync(offset, length, cancellationToken).ConfigureAwait(false);
    }

    private void NotifyAfterWrite(long offset, long length)
    {
        foreach (var o in _observers)
            o.AfterWrite(offset, length);
    }

    private bool HasObservers => !_observers.IsEmpty;
}
