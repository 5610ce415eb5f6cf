using SharpBlock.Jobs;

namespace SharpBlock.Qmp.Commands;

/// <summary>
/// A command's work once its checks passed and its change is made (QEMU's "prepare"): what is left to do
/// when every action of the transaction got this far (commit: start a job), and what puts things back when
/// a later one failed (abort). A standalone command is a transaction of one: prepare, then commit.
/// </summary>
internal sealed class PreparedAction
{
    /// <summary>What finishing the action takes; it must not fail for reasons a prepare could have checked.</summary>
    public Func<ValueTask>? Commit { get; init; }

    /// <summary>What undoing the prepare takes.</summary>
    public Func<ValueTask>? Abort { get; init; }

    /// <summary>The job commit runs, if the action starts one; a grouped transaction puts it in its group first.</summary>
    public BlockJob? Job { get; init; }

    public ValueTask CommitAsync() => Commit?.Invoke() ?? ValueTask.CompletedTask;

    public ValueTask AbortAsync() => Abort?.Invoke() ?? ValueTask.CompletedTask;
}
