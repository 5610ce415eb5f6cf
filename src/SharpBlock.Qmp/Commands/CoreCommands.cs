using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>The monitor's own commands: negotiation, version, the command list, schema introspection, quit.</summary>
internal static class CoreCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.QmpCapabilities(static ctx =>
        {
            ctx.Session.Negotiated = true;
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.QueryVersion(static ctx => ValueTask.FromResult(ctx.Server.Version)));
        server.Register(QmpCommandTable.QueryCommands(static ctx =>
        {
            var list = new List<CommandInfo>();
            foreach (var name in ctx.Server.CommandNames)
                list.Add(new CommandInfo { Name = name });
            return ValueTask.FromResult<IReadOnlyList<CommandInfo>>(list);
        }));
        server.Register(QmpCommandTable.QueryQmpSchema(static ctx =>
            ValueTask.FromResult<IReadOnlyList<SchemaInfo>>(SchemaIntrospection.Describe(ctx.Server.CommandNames))));
        server.Register(QmpCommandTable.Quit(static ctx =>
        {
            // The daemon flushes and exits once the reply is on its way, as QEMU does.
            ctx.Session.AfterReply(ctx.Server.RequestQuit);
            return ValueTask.CompletedTask;
        }));
    }
}
