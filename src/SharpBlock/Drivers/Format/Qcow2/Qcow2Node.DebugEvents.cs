using System.Runtime.CompilerServices;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// blkdebug events at the points of QEMU's qcow2 where it raises them: before each table load and write,
/// each allocation, each data request. An armed rule then fails the next request reaching the filter,
/// which is how iotests 026 breaks every metadata update in turn.
/// </summary>
public sealed partial class Qcow2Node
{
    private FormatDebugEvents _debug;

    private void AttachDebugEvents() => _debug = FormatDebugEvents.Attach(_file);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Debug(BlkdebugEvent e) => _debug.Raise(e);
}
