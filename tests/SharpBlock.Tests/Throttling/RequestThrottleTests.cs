using Microsoft.Extensions.Time.Testing;
using SharpBlock.Throttling;

namespace SharpBlock.Tests.Throttling;

/// <summary>
/// The device throttle's arithmetic and fairness on a fake clock: every assertion names the exact moment a
/// request may start, so nothing here depends on how busy the machine is.
/// </summary>
public class RequestThrottleTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public void Without_limits_every_request_starts_at_once()
    {
        var clock = new FakeTimeProvider();
        using var t = new RequestThrottle(clock);
        for (int i = 0; i < 100; i++)
            Assert.True(t.WaitAsync(i % 2 == 0, 1 << 20, None).IsCompletedSuccessfully);
        Assert.Equal(0, t.Queued);
    }

    [Fact]
    public void A_request_past_the_byte_budget_waits_exactly_as_long_as_the_excess_takes_to_drain()
    {
        var clock = new FakeTimeProvider();
        using var t = new RequestThrottle(clock);
        t.SetLimits(new ThrottleLimits { Bps = 1000 });

        // An empty bucket lets the first request through whatever its size; it then holds 1000 bytes and its
        // burst is a tenth of a second's worth (100), so the next request waits (1000 - 100) / 1000 = 0.9 s.
        Assert.True(t.WaitAsync(false, 1000, None).IsCompletedSuccessfully);
        var next = t.WaitAsync(true, 100, None).AsTask();
        Assert.False(next.IsCompleted);
        Assert.Equal(1, t.Queued);

        clock.Advance(TimeSpan.FromMilliseconds(899));
        Assert.False(next.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(2));
        Assert.True(next.IsCompletedSuccessfully);
        Assert.Equal(0, t.Queued);
    }

    [Fact]
    public void Queued_reads_and_writes_are_let_go_in_turn()
    {
        var clock = new FakeTimeProvider();
        using var t = new RequestThrottle(clock);
        // Ten operations a second, a burst of one: after two free starts, one request per 100 ms.
        t.SetLimits(new ThrottleLimits { Iops = 10 });
        Assert.True(t.WaitAsync(false, 512, None).IsCompletedSuccessfully);
        Assert.True(t.WaitAsync(false, 512, None).IsCompletedSuccessfully);

        var r1 = t.WaitAsync(false, 512, None).AsTask();
        var r2 = t.WaitAsync(false, 512, None).AsTask();
        var r3 = t.WaitAsync(false, 512, None).AsTask();
        var w1 = t.WaitAsync(true, 512, None).AsTask();
        var w2 = t.WaitAsync(true, 512, None).AsTask();
        Task[] all = [r1, r2, r3, w1, w2];
        Assert.All(all, x => Assert.False(x.IsCompleted));

        // The reads came first, yet the writes do not wait for all of them: r1, w1, r2, w2, r3.
        Task[] expected = [r1, w1, r2, w2, r3];
        for (int step = 0; step < expected.Length; step++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(101));
            for (int i = 0; i < expected.Length; i++)
                Assert.Equal(i <= step, expected[i].IsCompleted);
        }
    }

    [Fact]
    public void A_newcomer_that_would_fit_still_queues_behind_an_earlier_waiter_of_its_kind()
    {
        var clock = new FakeTimeProvider();
        using var t = new RequestThrottle(clock);
        t.SetLimits(new ThrottleLimits { BpsWrite = 1000 });
        Assert.True(t.WaitAsync(true, 1000, None).IsCompletedSuccessfully);
        var big = t.WaitAsync(true, 900, None).AsTask();
        var small = t.WaitAsync(true, 1, None).AsTask();
        // Reads have no limit here and are not held by queued writes.
        Assert.True(t.WaitAsync(false, 1 << 20, None).IsCompletedSuccessfully);

        clock.Advance(TimeSpan.FromMilliseconds(905));
        Assert.True(big.IsCompletedSuccessfully);
        // The bucket now holds 100 + 900 bytes again: the one-byte write waits its full 0.9 s turn.
        Assert.False(small.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(890));
        Assert.False(small.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(15));
        Assert.True(small.IsCompletedSuccessfully);
    }

    [Fact]
    public void A_request_larger_than_iops_size_counts_as_that_many_operations()
    {
        var clock = new FakeTimeProvider();
        using var t = new RequestThrottle(clock);
        t.SetLimits(new ThrottleLimits { Iops = 10, IopsSize = 4096 });
        // 40 KiB at 4 KiB per operation is ten operations: a whole second of budget, less the one-op burst.
        Assert.True(t.WaitAsync(false, 40960, None).IsCompletedSuccessfully);
        var next = t.WaitAsync(false, 512, None).AsTask();
        clock.Advance(TimeSpan.FromMilliseconds(895));
        Assert.False(next.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(10));
        Assert.True(next.IsCompletedSuccessfully);
    }

    [Fact]
    public void A_burst_lets_that_many_bytes_through_before_the_average_applies()
    {
        var clock = new FakeTimeProvider();
        using var t = new RequestThrottle(clock);
        t.SetLimits(new ThrottleLimits { Bps = 1000, BpsMax = 5000 });
        for (int i = 0; i < 6; i++)
            Assert.True(t.WaitAsync(false, 1000, None).IsCompletedSuccessfully);
        // 6000 poured, burst 5000: the seventh waits one second.
        var seventh = t.WaitAsync(false, 1000, None).AsTask();
        clock.Advance(TimeSpan.FromMilliseconds(995));
        Assert.False(seventh.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(10));
        Assert.True(seventh.IsCompletedSuccessfully);
    }

    [Fact]
    public void Lifting_the_limits_releases_every_queued_request_at_once()
    {
        var clock = new FakeTimeProvider();
        using var t = new RequestThrottle(clock);
        t.SetLimits(new ThrottleLimits { Bps = 10 });
        Assert.True(t.WaitAsync(false, 10_000, None).IsCompletedSuccessfully);
        var queued = Enumerable.Range(0, 4).Select(i => t.WaitAsync(i % 2 == 1, 100, None).AsTask()).ToArray();
        Assert.Equal(4, t.Queued);

        t.SetLimits(ThrottleLimits.None);
        Assert.All(queued, x => Assert.True(x.IsCompletedSuccessfully));
        Assert.Equal(0, t.Queued);
    }

    [Fact]
    public void A_cancelled_waiter_leaves_the_queue_without_holding_up_the_one_behind_it()
    {
        var clock = new FakeTimeProvider();
        using var t = new RequestThrottle(clock);
        t.SetLimits(new ThrottleLimits { Bps = 1000 });
        Assert.True(t.WaitAsync(false, 1000, None).IsCompletedSuccessfully);
        using var cts = new CancellationTokenSource();
        var cancelled = t.WaitAsync(false, 900, cts.Token).AsTask();
        var behind = t.WaitAsync(false, 50, None).AsTask();

        cts.Cancel();
        Assert.True(cancelled.IsCanceled);
        // The cancelled 900 bytes were never accounted: the one behind starts after the first 0.9 s, and the
        // throttle does not make it wait a second turn for bytes that never went.
        clock.Advance(TimeSpan.FromMilliseconds(905));
        Assert.True(behind.IsCompletedSuccessfully);
        Assert.Equal(0, t.Queued);
    }

    [Fact]
    public void Disposing_lets_queued_requests_go()
    {
        var clock = new FakeTimeProvider();
        var t = new RequestThrottle(clock);
        t.SetLimits(new ThrottleLimits { Iops = 1 });
        // One operation a second, a burst of a tenth of one: only the first goes at once.
        Assert.True(t.WaitAsync(true, 1, None).IsCompletedSuccessfully);
        var queued = t.WaitAsync(true, 1, None).AsTask();
        Assert.False(queued.IsCompleted);
        t.Dispose();
        Assert.True(queued.IsCompletedSuccessfully);
    }
}
