using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Graph;
using SharpBlock.Jobs;

namespace SharpBlock.Tests.Jobs;

/// <summary>The guest-write tracker mirror, backup and stream share, on a real (memory) node's write path.</summary>
public class GuestWriteTrackerTests
{
    [Fact]
    public async Task A_held_range_keeps_overlapping_guest_writes_waiting_until_released_and_others_pass()
    {
        await using var node = new MemoryNode(new byte[1 << 20], NodeSettings.Default);
        var seen = new List<(long, long)>();
        var tracker = new GuestWriteTracker(node, afterWrite: (o, l) => { lock (seen) seen.Add((o, l)); });
        var hold = await tracker.HoldAsync(4096, 4096);

        var blocked = node.WriteAsync(6144, new byte[] { 1, 2, 3 }).AsTask();
        await node.WriteAsync(65536, new byte[] { 9 });
        await Task.Delay(100);
        Assert.False(blocked.IsCompleted);
        Assert.Equal(0, node.ToArray()[6144]);

        hold.Dispose();
        await blocked.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, node.ToArray()[6144]);
        Assert.Equal([(65536L, 1L), (6144L, 3L)], seen);
        tracker.Detach();
    }

    [Fact]
    public async Task A_hold_waits_for_the_guest_write_already_running_and_own_writes_pass_untracked()
    {
        await using var node = new MemoryNode(new byte[1 << 20], NodeSettings.Default);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int before = 0;
        var tracker = new GuestWriteTracker(node, beforeWrite: async (_, _, _) =>
        {
            Interlocked.Increment(ref before);
            await release.Task;
        });

        var running = node.WriteAsync(0, new byte[512]).AsTask();
        while (Volatile.Read(ref before) == 0)
            await Task.Delay(5);
        var holding = tracker.HoldAsync(256, 512).AsTask();
        await Task.Delay(100);
        Assert.False(holding.IsCompleted);
        release.SetResult();
        await running.WaitAsync(TimeSpan.FromSeconds(10));
        using (await holding.WaitAsync(TimeSpan.FromSeconds(10)))
        {
            // The job writes into its own hold without waiting on itself and without its hook running.
            using (tracker.OwnWrites())
                await node.WriteAsync(256, new byte[] { 7 }).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.Equal(1, before);
        Assert.Equal(7, node.ToArray()[256]);
        tracker.Detach();
        tracker.Detach();
    }
}
