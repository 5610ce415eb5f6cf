using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// QEMU 7.2's block exports: block-export-add, block-export-del, query-block-exports. NBD is the only kind;
/// nbd-server-add's exports are listed and removed here too (their id is their export name).
/// </summary>
internal static class BlockExportCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.BlockExportAdd(static (a, ctx) => ctx.Server.Nbd.AddBlockExportAsync(a)));
        server.Register(QmpCommandTable.BlockExportDel(static (a, ctx) =>
            ctx.Server.Nbd.RemoveExportAsync(a.Id, a.Mode ?? BlockExportRemoveMode.Safe)));
        server.Register(QmpCommandTable.QueryBlockExports(static ctx => ValueTask.FromResult(ctx.Server.Nbd.QueryExports())));
    }
}
