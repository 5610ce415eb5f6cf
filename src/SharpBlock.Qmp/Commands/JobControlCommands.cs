using SharpBlock.Graph;
using SharpBlock.Jobs;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// QEMU 7.2's generic job commands (job-*, query-jobs) and the block-job names of finalize and dismiss. They
/// name a job by its id and check the verb against the job's status, with 7.2's errors.
/// </summary>
internal static class JobControlCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.QueryJobs(static ctx =>
        {
            var list = new List<JobInfo>();
            var jobs = ctx.Server.Graph.Jobs.Snapshot();
            // Newest first, as QEMU 7.2 lists them.
            for (int i = jobs.Count - 1; i >= 0; i--)
            {
                var j = jobs[i];
                list.Add(new JobInfo
                {
                    Id = j.Id,
                    Type = j.Kind,
                    Status = j.Status,
                    CurrentProgress = j.Offset,
                    TotalProgress = j.Len,
                    Error = j.Status == JobStatus.Concluded ? j.Error : null,
                });
            }

            return ValueTask.FromResult<IReadOnlyList<JobInfo>>(list);
        }));
        server.Register(QmpCommandTable.JobPause(static (a, ctx) => Run(ctx, a.Id, static j => j.UserPause())));
        server.Register(QmpCommandTable.JobResume(static (a, ctx) => Run(ctx, a.Id, static j => j.UserResume())));
        server.Register(QmpCommandTable.JobCancel(static (a, ctx) => Run(ctx, a.Id, static j =>
        {
            j.CheckVerb("cancel");
            // job-cancel does not wait for a paused job to be resumed, as block-job-cancel's force does, and
            // abandons a ready mirror (QEMU 7.2) where block-job-cancel lets it end as a point-in-time copy.
            j.Cancel(force: true, abort: true);
        })));
        server.Register(QmpCommandTable.JobComplete(static (a, ctx) => Run(ctx, a.Id, static j =>
        {
            j.CheckVerb("complete");
            j.Complete();
        })));
        server.Register(QmpCommandTable.JobFinalize(static async (a, ctx) => await Job(ctx, a.Id).FinalizeJob().ConfigureAwait(false)));
        server.Register(QmpCommandTable.JobDismiss(static async (a, ctx) => await Job(ctx, a.Id).DismissJob().ConfigureAwait(false)));
        server.Register(QmpCommandTable.BlockJobFinalize(static async (a, ctx) => await BlockJob(ctx.Server.Graph, a.Id).FinalizeJob().ConfigureAwait(false)));
        server.Register(QmpCommandTable.BlockJobDismiss(static async (a, ctx) => await BlockJob(ctx.Server.Graph, a.Id).DismissJob().ConfigureAwait(false)));
    }

    private static BlockJob Job(QmpCallContext ctx, string id) =>
        ctx.Server.Graph.Jobs.FindById(id) ?? throw new QmpException("Job not found");

    private static ValueTask Run(QmpCallContext ctx, string id, Action<BlockJob> verb)
    {
        verb(Job(ctx, id));
        return ValueTask.CompletedTask;
    }

    private static BlockJob BlockJob(BlockGraph graph, string id) =>
        graph.Jobs.FindById(id) is { HasDevice: true } job ? job : throw new QmpException(ErrorClass.DeviceNotActive, $"Block job '{id}' not found");
}
