using SharpBlock.Errors;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Tests.Protocol;

/// <summary>Library failures get their QAPI error class at the QMP edge from their errno and kind, not all GenericError.</summary>
public class QmpExceptionTests
{
    [Fact]
    public void Block_errors_map_to_their_error_class_by_errno_and_kind()
    {
        var notFound = QmpException.From(new BlockException(Errno.ENODEV, "Device 'd9' not found"));
        Assert.Equal((ErrorClass.DeviceNotFound, "Device 'd9' not found"), (notFound.ErrorClass, notFound.Message));

        var generic = QmpException.From(new ImageOpenException(Errno.ENOENT, "/x.img", "No such file or directory"));
        Assert.Equal((ErrorClass.GenericError, "Could not open '/x.img': No such file or directory"), (generic.ErrorClass, generic.Message));

        var locked = QmpException.From(new ImageLockException("/x.img", "Failed to get \"write\" lock"));
        Assert.Equal(ErrorClass.GenericError, locked.ErrorClass);

        // .NET's own text never reaches a client.
        var bug = QmpException.From(new InvalidOperationException("secret internals"));
        Assert.DoesNotContain("secret", bug.Message, StringComparison.Ordinal);
    }
}
