using Microsoft.Extensions.Time.Testing;
using SharpBlock.Jobs;

namespace SharpBlock.Tests.Jobs;

/// <summary>A job's speed limit on a fake clock: the waits it asks for, to the millisecond.</summary>
public class JobRateLimiterTests
{
    [Fact]
    public void An_unlimited_job_never_waits()
    {
        var limiter = new JobRateLimiter(new FakeTimeProvider());
        for (int i = 0; i < 1000; i++)
            Assert.Equal(TimeSpan.Zero, limiter.Account(1L << 30));
    }

    [Fact]
    public void Within_a_slice_budget_nothing_waits_and_the_excess_waits_for_the_slice_end_plus_its_own_time()
    {
        var clock = new FakeTimeProvider();
        var limiter = new JobRateLimiter(clock) { Speed = 1000 };
        // 100 ms slices at 1000 B/s: a budget of 100 bytes per slice.
        Assert.Equal(TimeSpan.Zero, limiter.Account(60));
        Assert.Equal(TimeSpan.Zero, limiter.Account(40));
        clock.Advance(TimeSpan.FromMilliseconds(30));
        // 50 bytes over: the 70 ms left of this slice plus the 50 ms those bytes take.
        Assert.Equal(TimeSpan.FromMilliseconds(120), limiter.Account(50));
    }

    [Fact]
    public void A_job_that_waits_as_told_moves_at_its_speed()
    {
        var clock = new FakeTimeProvider();
        var start = clock.GetUtcNow();
        const long speed = 10 << 20;
        const long chunk = 1 << 20;
        var limiter = new JobRateLimiter(clock) { Speed = speed };
        for (int i = 0; i < 100; i++)
            clock.Advance(limiter.Account(chunk));

        // 100 MiB at 10 MiB/s: ten seconds, give or take the one slice the first chunk may start early in.
        double seconds = (clock.GetUtcNow() - start).TotalSeconds;
        Assert.InRange(seconds, 9.8, 10.1);
    }

    [Fact]
    public void A_new_speed_applies_to_the_next_chunk()
    {
        var clock = new FakeTimeProvider();
        var limiter = new JobRateLimiter(clock) { Speed = 1 << 20 };
        Assert.Equal(TimeSpan.Zero, limiter.Account(100 << 10));
        limiter.Speed = 0;
        Assert.Equal(TimeSpan.Zero, limiter.Account(100L << 20));
        limiter.Speed = 1000;
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(TimeSpan.Zero, limiter.Account(100));
        Assert.True(limiter.Account(1000) >= TimeSpan.FromSeconds(1));
    }
}
