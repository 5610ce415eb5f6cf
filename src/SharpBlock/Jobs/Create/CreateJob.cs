using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Jobs.Create;

/// <summary>
/// blockdev-create: one image made as a job, so the command returns at once and the result (or the error,
/// in the creator's words) is read from query-jobs. Progress is 0 of 1 until the creator returns, 1 of 1
/// after, whether it succeeded or not, as QEMU 7.2 counts it.
/// </summary>
public sealed class CreateJob : BlockJob
{
    private readonly Func<CancellationToken, ValueTask> _create;

    public CreateJob(BlockGraph graph, Func<CancellationToken, ValueTask> create)
        : base(graph, JobType.Create)
    {
        _create = create;
        Len = 1;
    }

    protected override async Task RunAsync()
    {
        try
        {
            await _create(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            Offset = 1;
        }
    }
}
