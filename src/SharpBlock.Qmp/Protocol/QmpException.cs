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

    /// <summary>
    /// The error a client is sent for any failure of a command. Messages of our own (QMP and block-layer
    /// errors) go out as they are, block-layer ones with the error class their kind and errno mean on the
    /// wire (a missing key is DeviceEncrypted, ENODEV is DeviceNotFound, the rest GenericError); a runtime I/O failure is reduced to the strerror text of its errno; and
    /// anything else is a bug whose details belong in the log: .NET's exception text never reaches a client.
    /// </summary>
    public static QmpException From(Exception ex) => ex switch
    {
        QmpException q => q,
        EncryptionKeyRequiredException e => new(ErrorClass.DeviceEncrypted, e.Message),
        BlockException { Errno: Errno.ENODEV } b => new(ErrorClass.DeviceNotFound, b.Message),
        BlockException b => new(ErrorClass.GenericError, b.Message),
        IOException or UnauthorizedAccessException => new(ErrorClass.GenericError, BlockException.Describe(BlockException.ErrnoOf(ex))),
        _ => new(ErrorClass.GenericError, "Internal error; the daemon's log has the details"),
    };

    /// <summary>True for failures that <see cref="From"/> answers with their own words (not a bug to log).</summary>
    public static bool IsExpected(Exception ex) => ex is QmpException or IOException or UnauthorizedAccessException;
}
