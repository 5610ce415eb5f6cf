using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Protocol;

/// <summary>An error answered on the wire: the QAPI error class and a description a person can act on.</summary>
public sealed class QmpException : Exception
{
    public QmpException(ErrorClass errorClass, string description)
        : base(description)
    {
        ErrorClass = errorClass;
    }

    public QmpException(string description)
        : this(ErrorClass.GenericError, description)
    {
    }

    public ErrorClass ErrorClass { get; }

    public static QmpException DeviceNotFound(string device) =>
        new(ErrorClass.DeviceNotFound, $"Device '{device}' not found");

    public static QmpException DeviceNotActive(string device) =>
        new(ErrorClass.DeviceNotActive, $"No active block job on device '{device}'");

    /// <summary>Turns a block-layer failure into the GenericError QEMU would send for it.</summary>
    public static QmpException From(BlockException ex) => new(ErrorClass.GenericError, ex.Message);
}
