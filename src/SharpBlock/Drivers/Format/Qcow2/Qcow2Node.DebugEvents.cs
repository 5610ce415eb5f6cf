using System.Runtime.CompilerServices;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// blkdebug events at the points of QEMU's qcow2 where it raises them: before each table load and write,
/// each allocation, each data request. An armed rule then fails the next request reaching the filter,
/// which is how iotests 026 breaks every metadata update in turn. Whether a filter is below is asked once
/// at open; without one each hook is a single predictable branch.
/// </summary>
public sealed partial class Qcow2Node
{
    private bool _debug;

    private void AttachDebugEvents()
    {
        _debug = _file.HasDebugFilter;
        _file.ParentRaisesRequestEvents();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Debug(BlkdebugEvent e)
    {
        if (_debug)
            _file.DebugEvent(e);
    }
}
