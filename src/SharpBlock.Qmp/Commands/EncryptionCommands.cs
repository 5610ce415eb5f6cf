using SharpBlock.Graph;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// block_passwd, and the DeviceEncrypted refusals of commands that would otherwise start I/O on a device
/// whose key is missing (cont, nbd-server-add, change).
/// </summary>
internal static class EncryptionCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.BlockPasswd(static (a, ctx) =>
        {
            var (_, node) = DeviceCommands.Lookup(ctx.Server.Graph, a.Device, a.NodeName);
            if (!node.SetChainEncryptionKey(a.Password))
                throw new QmpException($"Device '{a.Device ?? a.NodeName}' is not encrypted");
            return ValueTask.CompletedTask;
        }));
    }

    /// <summary>QEMU's DeviceEncrypted error: "'DEVICE' (FILENAME) is encrypted", naming the file whose key is missing.</summary>
    public static QmpException DeviceEncrypted(string device, BlockNode locked) =>
        new(ErrorClass.DeviceEncrypted, $"'{device}' ({locked.Filename}) is encrypted");

    /// <summary>Refuses with DeviceEncrypted when the device's medium still waits for a key.</summary>
    public static void ThrowIfKeyMissing(BlockBackend device)
    {
        if (device.Root?.NodeNeedingKey() is { } locked)
            throw DeviceEncrypted(device.Id, locked);
    }
}
