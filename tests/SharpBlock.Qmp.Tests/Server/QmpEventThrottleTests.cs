using System.Text;
using Microsoft.Extensions.Time.Testing;
using SharpBlock.Qmp.Server;

namespace SharpBlock.Qmp.Tests.Server;

/// <summary>QEMU 2.1's monitor throttle: the first event of a burst now, the newest one a second after the last sent.</summary>
public class QmpEventThrottleTests
{
    private static byte[] M(string s) => Encoding.ASCII.GetBytes(s);

    private static string[] Texts(List<byte[]> sent) => [.. sent.Select(Encoding.ASCII.GetString)];

    [Fact]
    public void Limited_events_go_out_at_most_once_a_second_and_the_newest_wins()
    {
        var clock = new FakeTimeProvider();
        var sent = new List<byte[]>();
        using var t = new QmpEventThrottle(sent.Add, clock);
        t.Offer("QUORUM_REPORT_BAD", M("a"));
        Assert.Equal(["a"], Texts(sent));
        clock.Advance(TimeSpan.FromMilliseconds(300));
        t.Offer("QUORUM_REPORT_BAD", M("b"));
        t.Offer("QUORUM_REPORT_BAD", M("c"));
        // Another limited event has a limit of its own; unlimited ones are never held.
        t.Offer("QUORUM_FAILURE", M("f"));
        t.Offer("BLOCK_IO_ERROR", M("x"));
        t.Offer("BLOCK_IO_ERROR", M("y"));
        Assert.Equal(["a", "f", "x", "y"], Texts(sent));
        clock.Advance(TimeSpan.FromMilliseconds(699));
        Assert.Equal(4, sent.Count);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(["a", "f", "x", "y", "c"], Texts(sent));

        // Within a second of that delayed one, the next is held again; after a quiet second it goes at once.
        clock.Advance(TimeSpan.FromMilliseconds(500));
        t.Offer("QUORUM_REPORT_BAD", M("d"));
        Assert.Equal(5, sent.Count);
        clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal("d", Texts(sent)[^1]);
        clock.Advance(TimeSpan.FromSeconds(5));
        t.Offer("QUORUM_REPORT_BAD", M("e"));
        Assert.Equal("e", Texts(sent)[^1]);
        Assert.Equal(7, sent.Count);
    }
}
