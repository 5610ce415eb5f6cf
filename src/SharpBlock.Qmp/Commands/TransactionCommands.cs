using SharpBlock.Graph;
using SharpBlock.Jobs;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// transaction (QEMU 7.2): its actions happen all, or none. With every device's I/O held back, each action in
/// turn is checked and carried out (prepared) the way its own command does it, so an action sees what the
/// ones before it did (a bitmap added earlier may be cleared later in the same transaction, as in QEMU).
/// When one fails, those before it are undone in reverse order and its error is the answer; when all got
/// through, the jobs they made start, still before any request of a guest gets in, so a full backup and a
/// bitmap added beside it begin at the same instant.
/// </summary>
internal static class TransactionCommands
{
    public static void Register(QmpServer server) =>
        server.Register(QmpCommandTable.Transaction(static (a, ctx) => RunAsync(ctx.Server.Graph, a, ctx.CancellationToken)));

    private static async ValueTask RunAsync(BlockGraph graph, TransactionArguments a, CancellationToken ct)
    {
        bool grouped = a.Properties?.CompletionMode == ActionCompletionMode.Grouped;
        // All devices, as QEMU drains all: an action may name a node under any of them.
        var devices = graph.Devices.ToList();
        var drains = new List<DrainScope>(devices.Count);
        try
        {
            foreach (var d in devices)
                drains.Add(await d.DrainAsync().ConfigureAwait(false));
            var prepared = await PrepareAllAsync(graph, a.Actions, grouped, ct).ConfigureAwait(false);
            if (grouped)
            {
                var group = new JobGroup();
                foreach (var p in prepared)
                {
                    if (p.Job is { } job)
                        group.Add(job);
                }
            }

            foreach (var p in prepared)
                await p.CommitAsync().ConfigureAwait(false);
        }
        finally
        {
            foreach (var d in drains)
                d.Dispose();
        }
    }

    private static async ValueTask<List<PreparedAction>> PrepareAllAsync(BlockGraph graph, List<TransactionAction> actions, bool grouped,
        CancellationToken ct)
    {
        var prepared = new List<PreparedAction>(actions.Count);
        try
        {
            foreach (var action in actions)
            {
                if (grouped && !TakesGrouped(action.Type))
                    throw new QmpException($"Action '{action.Type.ToWire()}' does not support Transaction property completion-mode = grouped");
                prepared.Add(await PrepareAsync(graph, action, ct).ConfigureAwait(false));
            }
        }
        catch
        {
            for (int i = prepared.Count - 1; i >= 0; i--)
                await UndoAsync(prepared[i]).ConfigureAwait(false);
            throw;
        }

        return prepared;
    }

    /// <summary>Whether the action may be part of a grouped transaction: the backups, and abort (which fails anyway).</summary>
    private static bool TakesGrouped(TransactionActionKind kind) =>
        kind is TransactionActionKind.Abort or TransactionActionKind.BlockdevBackup or TransactionActionKind.DriveBackup;

    private static async ValueTask<PreparedAction> PrepareAsync(BlockGraph graph, TransactionAction action, CancellationToken ct) =>
        action.Type switch
        {
            TransactionActionKind.Abort => throw new QmpException("Transaction aborted using Abort action"),
            TransactionActionKind.BlockDirtyBitmapAdd => BitmapCommands.PrepareAdd(graph, action.BlockDirtyBitmapAdd!),
            TransactionActionKind.BlockDirtyBitmapRemove => BitmapCommands.PrepareRemove(graph, action.BlockDirtyBitmapRemove!, ct),
            TransactionActionKind.BlockDirtyBitmapClear => BitmapCommands.PrepareClear(graph, action.BlockDirtyBitmapClear!),
            TransactionActionKind.BlockDirtyBitmapEnable => BitmapCommands.PrepareRecording(graph, action.BlockDirtyBitmapEnable!, true),
            TransactionActionKind.BlockDirtyBitmapDisable => BitmapCommands.PrepareRecording(graph, action.BlockDirtyBitmapDisable!, false),
            TransactionActionKind.BlockDirtyBitmapMerge => BitmapCommands.PrepareMerge(graph, action.BlockDirtyBitmapMerge!),
            TransactionActionKind.BlockdevBackup => await BlockdevJobCommands.PrepareBackupAsync(graph, action.BlockdevBackup!).ConfigureAwait(false),
            TransactionActionKind.DriveBackup => await JobCommands.PrepareDriveBackupAsync(graph, action.DriveBackup!, ct).ConfigureAwait(false),
            TransactionActionKind.BlockdevSnapshotSync =>
                await ChainCommands.PrepareSnapshotSyncAsync(graph, action.BlockdevSnapshotSync!, ct).ConfigureAwait(false),
            TransactionActionKind.BlockdevSnapshotInternalSync =>
                await InternalSnapshotCommands.PrepareAsync(graph, action.BlockdevSnapshotInternalSync!, ct).ConfigureAwait(false),
            _ => throw new QmpException($"Action '{action.Type.ToWire()}' is not supported"),
        };

    /// <summary>
    /// Undoes one prepared action. An undo that fails must not keep the ones before it from running, nor hide
    /// the error that made the transaction fail, so it is dropped here.
    /// </summary>
    private static async ValueTask UndoAsync(PreparedAction p)
    {
        try
        {
            await p.AbortAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // see above: the failing action's error is the answer, not the undo's
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }
}
