using System.Buffers;
using System.Runtime.InteropServices;

namespace SharpBlock.Drivers.Protocol.Rbd;

/// <summary>
/// One librbd asynchronous operation as a task. librbd calls back on its own thread: the callback is a static
/// unmanaged function (nothing to collect), its argument a GCHandle that keeps this object, and with it the
/// pinned buffer, alive until the callback has run. Continuations run off librbd's thread so that no caller
/// can block it.
/// </summary>
internal sealed unsafe class RbdCompletion
{
    private readonly TaskCompletionSource<long> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private MemoryHandle _pin;
    private GCHandle _self;

    private readonly string _what;

    private RbdCompletion(string what) => _what = what;

    /// <summary>
    /// Starts one operation: <paramref name="submit"/> gets the completion handle and the pinned buffer's address
    /// (null without a buffer) and returns what librbd's submit call returned. The task yields the operation's
    /// result, or fails with its errno in the words of <paramref name="what"/>.
    /// </summary>
    public static Task<long> Run(ReadOnlyMemory<byte> buffer, string what, Func<nint, nint, int> submit)
    {
        var op = new RbdCompletion(what);
        op._pin = buffer.Pin();
        op._self = GCHandle.Alloc(op);
        int r = LibRbd.AioCreateCompletion(GCHandle.ToIntPtr(op._self), &Complete, out nint completion);
        if (r < 0)
        {
            op.Release();
            return Task.FromException<long>(RbdErrors.Of(r, what));
        }

        r = submit(completion, (nint)op._pin.Pointer);
        if (r < 0)
        {
            // A refused submission never calls back.
            LibRbd.AioRelease(completion);
            op.Release();
            return Task.FromException<long>(RbdErrors.Of(r, what));
        }

        return op._done.Task;
    }

    private void Release()
    {
        _pin.Dispose();
        if (_self.IsAllocated)
            _self.Free();
    }

    [UnmanagedCallersOnly]
    private static void Complete(nint completion, nint arg)
    {
        var op = (RbdCompletion)GCHandle.FromIntPtr(arg).Target!;
        long r = LibRbd.AioGetReturnValue(completion);
        LibRbd.AioRelease(completion);
        op.Release();
        if (r < 0)
            op._done.TrySetException(RbdErrors.Of((int)r, op._what));
        else
            op._done.TrySetResult(r);
    }
}
