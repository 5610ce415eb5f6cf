using System.Runtime.ExceptionServices;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Graph;

public sealed partial class BlockBackend
{
    private static readonly TimeSpan KeyRecheckInterval = TimeSpan.FromSeconds(1);

    // Non-null while the device is stopped by its error policy; completed by Resume ('cont').
    private TaskCompletionSource? _stopped;

    public BlockdevOnError ReadErrorPolicy { get; }

    public BlockdevOnError WriteErrorPolicy { get; }

    /// <summary>io-status is kept only where a policy can stop the device, as QEMU shows it.</summary>
    public bool IoStatusEnabled => WriteErrorPolicy is BlockdevOnError.Stop or BlockdevOnError.Enospc
        || ReadErrorPolicy is BlockdevOnError.Stop or BlockdevOnError.Enospc;

    public BlockDeviceIoStatus IoStatus { get; private set; } = BlockDeviceIoStatus.Ok;

    /// <summary>True while an I/O error holds the device's requests until 'cont'.</summary>
    public bool IsStopped => Volatile.Read(ref _stopped) != null;

    /// <summary>What the policy does about an error of this kind in this direction.</summary>
    public BlockErrorAction ActionFor(Errno errno, IoOperationType operation)
    {
        var policy = operation == IoOperationType.Read ? ReadErrorPolicy : WriteErrorPolicy;
        return policy switch
        {
            BlockdevOnError.Ignore => BlockErrorAction.Ignore,
            BlockdevOnError.Stop => BlockErrorAction.Stop,
            BlockdevOnError.Enospc when errno == Errno.ENOSPC => BlockErrorAction.Stop,
            _ => BlockErrorAction.Report,
        };
    }

    /// <summary>
    /// Applies the error policy to a failed request: report rethrows, ignore returns false (the request
    /// completes as if it succeeded), stop holds the request until 'cont' and returns true (retry it).
    /// </summary>
    private async ValueTask<bool> OnErrorAsync(BlockException error, IoOperationType operation, CancellationToken cancellationToken)
    {
        if (error is EncryptionKeyRequiredException keyMissing)
        {
            // Not an I/O error: the device waits for block_passwd as a guest waits behind a VM that cannot
            // start without the key. No policy, no event; the request runs again once the key is there. It
            // also looks again now and then, so a medium ejected or swapped meanwhile ends the wait.
            await Task.WhenAny(keyMissing.KeyProvided, Task.Delay(KeyRecheckInterval, cancellationToken)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            return true;
        }

        var action = ActionFor(error.Errno, operation);
        Task? resumed = null;
        if (action == BlockErrorAction.Stop)
        {
            // io-status and the stop are in place before the event goes out, so a client that reacts to
            // the event with query-block sees the device as the event describes it.
            lock (_stateLock)
            {
                if (IoStatusEnabled && IoStatus == BlockDeviceIoStatus.Ok)
                    IoStatus = error.Errno == Errno.ENOSPC ? BlockDeviceIoStatus.Nospace : BlockDeviceIoStatus.Failed;
                _stopped ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                resumed = _stopped.Task;
            }
        }

        var e = new BlockIoErrorEvent
        {
            Device = Id,
            Operation = operation,
            Action = action,
            Reason = BlockException.Describe(error.Errno),
        };
        if (IoStatusEnabled)
            e.Nospace = error.Errno == Errno.ENOSPC;
        Graph.Events.Raise(e);

        switch (action)
        {
            case BlockErrorAction.Ignore:
                return false;
            case BlockErrorAction.Stop:
                await resumed!.WaitAsync(cancellationToken).ConfigureAwait(false);
                return true;
            default:
                ExceptionDispatchInfo.Throw(error);
                return false;
        }
    }

    private ValueTask WaitWhileStoppedAsync(CancellationToken cancellationToken)
    {
        var stopped = Volatile.Read(ref _stopped);
        return stopped == null ? ValueTask.CompletedTask : new ValueTask(stopped.Task.WaitAsync(cancellationToken));
    }

    /// <summary>
    /// What 'cont' does for this device: resets io-status and lets the held requests retry and the waiting
    /// ones start.
    /// </summary>
    public void Resume()
    {
        TaskCompletionSource? stopped;
        lock (_stateLock)
        {
            IoStatus = BlockDeviceIoStatus.Ok;
            stopped = _stopped;
            _stopped = null;
        }

        stopped?.TrySetResult();
    }
}
