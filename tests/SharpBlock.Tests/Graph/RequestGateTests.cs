using SharpBlock.Io;

namespace SharpBlock.Tests.Graph;

/// <summary>The drain: a graph change waits for requests in flight, and holds new ones until it ends.</summary>
public class RequestGateTests
{
    [Fact]
    public async Task A_drain_waits_for_requests_in_flight_and_holds_new_ones_until_it_ends()
    {
        var gate = new RequestGate();
        await gate.EnterAsync();
        await gate.EnterAsync();
        Assert.Equal(2, gate.InFlight);

        var drain = gate.BeginDrainAsync().AsTask();
        Assert.False(drain.IsCompleted);
        var late = gate.EnterAsync().AsTask();
        Assert.False(late.IsCompleted);

        gate.Leave();
        Assert.False(drain.IsCompleted);
        gate.Leave();
        await drain.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, gate.InFlight);
        Assert.False(late.IsCompleted);

        gate.EndDrain();
        await late.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, gate.InFlight);
    }

    [Fact]
    public async Task Nested_drains_reopen_only_when_the_outermost_ends()
    {
        var gate = new RequestGate();
        await gate.BeginDrainAsync();
        await gate.BeginDrainAsync();
        var waiting = gate.EnterAsync().AsTask();
        gate.EndDrain();
        await Task.Yield();
        Assert.False(waiting.IsCompleted);
        Assert.Equal(0, gate.InFlight);
        gate.EndDrain();
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, gate.InFlight);
    }

    [Fact]
    public async Task An_idle_gate_drains_at_once_and_many_held_requests_all_go_after()
    {
        var gate = new RequestGate();
        Assert.True(gate.BeginDrainAsync().IsCompletedSuccessfully);
        var held = Enumerable.Range(0, 50).Select(_ => gate.EnterAsync().AsTask()).ToArray();
        Assert.All(held, t => Assert.False(t.IsCompleted));
        gate.EndDrain();
        await Task.WhenAll(held).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(50, gate.InFlight);
    }

    [Fact]
    public async Task A_second_drain_that_begins_while_the_first_waits_completes_with_it()
    {
        var gate = new RequestGate();
        await gate.EnterAsync();
        var first = gate.BeginDrainAsync().AsTask();
        var second = gate.BeginDrainAsync().AsTask();
        Assert.False(first.IsCompleted || second.IsCompleted);
        gate.Leave();
        await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(10));
        gate.EndDrain();
        gate.EndDrain();
        Assert.True(gate.EnterAsync().IsCompletedSuccessfully);
    }
}
