using SharpBlock.Qmp.Server;

namespace SharpBlock.Qmp.Commands;

/// <summary>Every command this build implements, area by area. What is not registered here does not exist for clients.</summary>
internal static class StandardCommands
{
    public static void RegisterAll(QmpServer server)
    {
        CoreCommands.Register(server);
        BlockdevCommands.Register(server);
        BlockdevCreateCommands.Register(server);
        BlockdevJobCommands.Register(server);
        ObjectCommands.Register(server);
        BlockQueryCommands.Register(server);
        DeviceCommands.Register(server);
        EncryptionCommands.Register(server);
        JobCommands.Register(server);
        JobControlCommands.Register(server);
        ChainCommands.Register(server);
        InternalSnapshotCommands.Register(server);
        NbdCommands.Register(server);
        BlockExportCommands.Register(server);
        MediaCommands.Register(server);
        IoPolicyCommands.Register(server);
        BitmapCommands.Register(server);
        TransactionCommands.Register(server);
    }
}
