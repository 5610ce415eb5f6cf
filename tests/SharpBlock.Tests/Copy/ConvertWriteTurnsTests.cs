using SharpBlock.Copy;

namespace SharpBlock.Tests.Copy;

/// <summary>The in-order write turns of convert: waiters arriving in any order write in turn order.</summary>
public class ConvertWriteTurnsTests
{
    [Fact]
    public async Task Turns_complete_in_order_whatever_order_the_writers_arrive_in()
    {
        var turns = new ConvertWriteTurns();
        var order = new List<long>();
        var writers = new List<Task>();
        foreach (long t in new long[] { 4, 1, 3, 0, 2 })
        {
            writers.Add(Task.Run(async () =>
            {
                await turns.WaitAsync(t);
                lock (order)
                    order.Add(t);
                turns.Done(t);
            }));
        }

        await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([0, 1, 2, 3, 4], order);
    }

    [Fact]
    public async Task A_failure_wakes_every_waiter_and_refuses_new_ones()
    {
        var turns = new ConvertWriteTurns();
        var waiting = turns.WaitAsync(3).AsTask();
        Assert.False(waiting.IsCompleted);
        turns.Fail();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Throws<OperationCanceledException>(() => turns.WaitAsync(0));
    }
}
