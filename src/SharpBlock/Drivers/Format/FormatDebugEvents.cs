using System.Runtime.CompilerServices;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format;

/// <summary>
/// How a format driver raises blkdebug events on its file child: whether a debug filter sits below is asked
/// once at open, so on real images every hook is one predictable branch. Attaching also tells a filter that
/// the format raises the request events (read_aio, write_aio, flush_to_os, flush_to_disk) itself, at the
/// points QEMU's driver does, so its metadata I/O does not count as data I/O.
/// </summary>
internal readonly struct FormatDebugEvents
{
    private readonly BlockNode? _file;

    private FormatDebugEvents(BlockNode? file) => _file = file;

    public static FormatDebugEvents Attach(BlockNode file)
    {
        if (!file.HasDebugFilter)
            return default;
        file.ParentRaisesRequestEvents();
        return new FormatDebugEvents(file);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Raise(BlkdebugEvent debugEvent) => _file?.DebugEvent(debugEvent);
}
