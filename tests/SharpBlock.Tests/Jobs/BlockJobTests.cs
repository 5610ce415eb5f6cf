using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Jobs;
using SharpBlock.Schema;

namespace SharpBlock.Tests.Jobs;

/// <summary>
/// The job framework every block job stands on (progress, pause points, cancel, the on-error policies,
/// io-status and events), with a small copy job between two memory nodes.
/// </summary>
public class BlockJobTests
{
    private const int Chunk = 64 << 10;
    private const int Size = 16 * Chunk;

    /// <summary>Copies the device to a target chunk by chunk; a test may make chosen chunk writes fail.</summary>
    private sealed class CopyJob(BlockBackend device, MemoryNode target, BlockdevOnError onTargetError)
        : BlockJob(device, BlockJobType.Backup, 0, BlockdevOnError.Report, onTargetError)
    {
        public Func<int, BlockException?> Fault { get; set; } = _ => null;

        /// <summary>Set after each chunk; a test waits on it instead of on time.</summary>
        public SemaphoreSlim ChunkDone { get; } = new(0);

        public Exception? Crash { get; set; }

        /// <summary>When set, each chunk waits for a permit, so a test decides how far the job gets.</summary>
        public SemaphoreSlim? Steps { get; set; }

        protected override async Task RunAsync()
        {
            Len = Size;
            var buffer = new byte[Chunk];
            for (int i = 0; i < Size / Chunk; i++)
            {
                while (true)
                {
                    await PausePointAsync();
                    if (Steps != null)
                        await Steps.WaitAsync();
                    if (Crash != null && i == 2)
                        throw Crash;
                    await Device.ReadAsync((long)i * Chunk, buffer);
                    try
                    {
                        if (Fault(i) is { } ex)
                            throw ex;
                        await target.WriteAsync((long)i * Chunk, buffer);
                    }
                    catch (BlockException ex)
                    {
                        if (await HandleErrorAsync(ex, onSource: false, isRead: false))
                            continue;
                    }

                    break;
                }

                Offset = (long)(i + 1) * Chunk;
                await RateLimitAsync(Chunk);
                ChunkDone.Release();
            }
        }
    }

    private sealed class Rig : IAsyncDisposable
    {
        public Rig()
        {
            var data = new byte[Size];
            new Random(5).NextBytes(data);
            Source = data;
            SourceNode = new MemoryNode(data, NodeSettings.Default, "src");
            Target = new MemoryNode(new byte[Size], NodeSettings.Default, "dst");
            Device = Graph.CreateAnonymousDevice(SourceNode, "d0");
            Graph.Events.Raised += e =>
            {
                lock (Events)
                    Events.Add(e);
            };
        }

        public BlockGraph Graph { get; } = new();
        public byte[] Source { get; }
        public MemoryNode SourceNode { get; }
        public MemoryNode Target { get; }
        public BlockBackend Device { get; }
        public List<IQapiEvent> Events { get; } = [];

        public T[] Seen<T>()
        {
            lock (Events)
                return [.. Events.OfType<T>()];
        }

        public async ValueTask DisposeAsync()
        {
            await Graph.DisposeAsync();
            await SourceNode.DisposeAsync();
            await Target.DisposeAsync();
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in 30 s");
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task A_job_runs_to_the_end_reports_its_progress_and_says_completed_once()
    {
        await using var rig = new Rig();
        var job = new CopyJob(rig.Device, rig.Target, BlockdevOnError.Report);
        rig.Graph.Jobs.Start(job);
        Assert.Same(job, rig.Graph.Jobs.Find("d0"));
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(rig.Source, rig.Target.ToArray());
        var done = Assert.Single(rig.Seen<BlockJobCompletedEvent>());
        Assert.Equal(("d0", (long)Size, (long)Size, (string?)null), (done.Device, done.Len, done.Offset, done.Error));
        Assert.Equal(BlockJobType.Backup, done.Type);
        Assert.Empty(rig.Seen<BlockJobCancelledEvent>());
        Assert.Null(rig.Graph.Jobs.Find("d0"));
    }

    [Fact]
    public async Task A_paused_job_stops_at_its_next_pause_point_and_goes_on_when_resumed()
    {
        await using var rig = new Rig();
        var job = new CopyJob(rig.Device, rig.Target, BlockdevOnError.Report);
        job.Pause();
        rig.Graph.Jobs.Start(job);
        await WaitUntilAsync(() => !job.Busy);
        Assert.True(job.Paused);
        Assert.Equal(0, job.Offset);
        Assert.False(await job.ChunkDone.WaitAsync(300));
        Assert.False(job.Completion.IsCompleted);
        var info = job.Describe();
        Assert.True(info.Paused);
        Assert.False(info.Busy);

        job.Resume();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(rig.Source, rig.Target.ToArray());
    }

    [Fact]
    public async Task Cancel_refuses_a_paused_job_unless_forced_and_then_reports_cancelled_where_it_stopped()
    {
        await using var rig = new Rig();
        var job = new CopyJob(rig.Device, rig.Target, BlockdevOnError.Report) { Steps = new SemaphoreSlim(1) };
        rig.Graph.Jobs.Start(job);
        Assert.True(await job.ChunkDone.WaitAsync(TimeSpan.FromSeconds(30)));
        job.Pause();
        // The job may already be past its pause point, waiting for the next permit: that chunk still goes.
        job.Steps.Release(100);
        await WaitUntilAsync(() => !job.Busy);
        Assert.InRange(job.Offset, Chunk, 2 * Chunk);

        var ex = Assert.Throws<BlockException>(() => job.Cancel(force: false));
        Assert.Equal("The block job for device 'd0' is currently paused", ex.Message);
        Assert.Equal(Errno.EBUSY, ex.Errno);
        job.Cancel(force: true);
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        var cancelled = Assert.Single(rig.Seen<BlockJobCancelledEvent>());
        Assert.InRange(cancelled.Offset, Chunk, 2 * Chunk);
        Assert.Equal(job.Offset, cancelled.Offset);
        Assert.Empty(rig.Seen<BlockJobCompletedEvent>());
    }

    [Fact]
    public async Task On_error_stop_sets_io_status_waits_for_resume_then_retries_the_chunk()
    {
        await using var rig = new Rig();
        var job = new CopyJob(rig.Device, rig.Target, BlockdevOnError.Enospc);
        int failures = 0;
        job.Fault = i => i == 3 && Interlocked.Increment(ref failures) == 1 ? new BlockException(Errno.ENOSPC, "No space left on device") : null;
        rig.Graph.Jobs.Start(job);
        await WaitUntilAsync(() => job.Paused && !job.Busy);

        // enospc on a full disk is stop: paused by the error, io-status says why, progress holds at the chunk.
        var error = Assert.Single(rig.Seen<BlockJobErrorEvent>());
        Assert.Equal((BlockErrorAction.Stop, IoOperationType.Write), (error.Action, error.Operation));
        Assert.Equal(BlockDeviceIoStatus.Nospace, job.IoStatus);
        Assert.Equal(3L * Chunk, job.Offset);

        job.Resume();
        Assert.Equal(BlockDeviceIoStatus.Ok, job.IoStatus);
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, failures);
        Assert.Equal(rig.Source, rig.Target.ToArray());
        Assert.Null(Assert.Single(rig.Seen<BlockJobCompletedEvent>()).Error);
    }

    [Fact]
    public async Task On_error_enospc_reports_other_errors_and_the_job_fails_with_the_message()
    {
        await using var rig = new Rig();
        var job = new CopyJob(rig.Device, rig.Target, BlockdevOnError.Enospc)
        {
            Fault = i => i == 5 ? new BlockException(Errno.EIO, "Input/output error") : null,
        };
        rig.Graph.Jobs.Start(job);
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(BlockErrorAction.Report, Assert.Single(rig.Seen<BlockJobErrorEvent>()).Action);
        var done = Assert.Single(rig.Seen<BlockJobCompletedEvent>());
        Assert.Equal("Input/output error", done.Error);
        Assert.Equal(5L * Chunk, done.Offset);
    }

    [Fact]
    public async Task On_error_ignore_goes_on_past_the_failed_chunk()
    {
        await using var rig = new Rig();
        var job = new CopyJob(rig.Device, rig.Target, BlockdevOnError.Ignore)
        {
            Fault = i => i is 1 or 7 ? new BlockException(Errno.EIO, "Input/output error") : null,
        };
        rig.Graph.Jobs.Start(job);
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.All(rig.Seen<BlockJobErrorEvent>(), e => Assert.Equal(BlockErrorAction.Ignore, e.Action));
        Assert.Equal(2, rig.Seen<BlockJobErrorEvent>().Length);
        Assert.Null(Assert.Single(rig.Seen<BlockJobCompletedEvent>()).Error);
        var copied = rig.Target.ToArray();
        Assert.All(copied.AsSpan(Chunk, Chunk).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(rig.Source.AsSpan(2 * Chunk, 5 * Chunk).ToArray(), copied.AsSpan(2 * Chunk, 5 * Chunk).ToArray());
    }

    [Fact]
    public async Task A_job_that_crashes_ends_with_a_completed_event_carrying_the_error()
    {
        await using var rig = new Rig();
        var job = new CopyJob(rig.Device, rig.Target, BlockdevOnError.Report) { Crash = new InvalidOperationException("a bug in the job") };
        rig.Graph.Jobs.Start(job);
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("a bug in the job", Assert.Single(rig.Seen<BlockJobCompletedEvent>()).Error);
        Assert.Null(rig.Graph.Jobs.Find("d0"));
    }

    [Fact]
    public async Task A_device_runs_one_job_at_a_time_and_speed_must_not_be_negative()
    {
        await using var rig = new Rig();
        var job = new CopyJob(rig.Device, rig.Target, BlockdevOnError.Report);
        job.Pause();
        rig.Graph.Jobs.Start(job);
        var second = Assert.Throws<BlockException>(() => rig.Graph.Jobs.Start(new CopyJob(rig.Device, rig.Target, BlockdevOnError.Report)));
        Assert.Equal("Device 'd0' is in use", second.Message);
        Assert.Equal("Invalid parameter 'speed'", Assert.Throws<BlockException>(() => job.SetSpeed(-1)).Message);
        job.SetSpeed(1 << 20);
        Assert.Equal(1 << 20, job.Describe().Speed);
        job.Cancel(force: true);
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
