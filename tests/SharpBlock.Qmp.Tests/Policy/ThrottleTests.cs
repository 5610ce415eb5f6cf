using System.Diagnostics;
using System.Globalization;
using SharpBlock.Graph;
using SharpBlock.Testing;
using Xunit.Abstractions;

namespace SharpBlock.Qmp.Tests.Policy;

/// <summary>
/// block_set_io_throttle over QMP, measured on real I/O through the device. Each test prints the limit, the
/// measured figure and the tolerance. Rates are measured in the steady state (after the initial burst) from
/// completion times, so the figure does not depend on where the run starts or stops.
/// </summary>
[Collection(SharpBlock.Testing.TimingCollection.Name)]
public class ThrottleTests(ITestOutputHelper output)
{
    // The limit must hold: no more than 5% above it. Below it a busy machine may lag (these run beside other
    // tests on two cores), so the floor only proves the device is not throttled far harder than asked; the
    // exact arithmetic is proven on a fake clock in SharpBlock.Tests/Throttling.
    private const double Over = 0.05;
    private const double Under = 0.25;
    private const int MiB = 1 << 20;

    private sealed class Load
    {
        private readonly List<(double T, long Bytes)> _done = [];

        public void Add(double t, long bytes)
        {
            lock (_done)
                _done.Add((t, bytes));
        }

        /// <summary>
        /// When the cumulative bytes first reached <paramref name="burst"/>, and the largest excess of the
        /// cumulative bytes over burst + rate × t + slack at any completion (0 or less: never exceeded).
        /// </summary>
        public (double At, long Worst) Burst(long burst, long rate, long slack)
        {
            List<(double T, long Bytes)> sel;
            lock (_done)
                sel = [.. _done];
            sel.Sort((a, b) => a.T.CompareTo(b.T));
            double at = double.MaxValue;
            long sum = 0, worst = long.MinValue;
            foreach (var (t, bytes) in sel)
            {
                sum += bytes;
                if (sum >= burst && at == double.MaxValue)
                    at = t;
                worst = Math.Max(worst, sum - (burst + (long)(rate * t) + slack));
            }

            return (at, worst);
        }

        /// <summary>
        /// Steady-state rate inside [from, to], per second: the least-squares slope of cumulative bytes (and
        /// operations) over completion time, so one completion seen late on a busy machine moves it little.
        /// </summary>
        public (double Bytes, double Ops) Rate(double from, double to)
        {
            List<(double T, long Bytes)> sel;
            lock (_done)
                sel = _done.FindAll(d => d.T >= from && d.T <= to);
            sel.Sort((a, b) => a.T.CompareTo(b.T));
            Assert.True(sel.Count >= 10, "too few completions to measure: " + sel.Count);
            int n = sel.Count;
            double sumT = 0, sumB = 0, sumO = 0, cumB = 0;
            var cum = new double[n];
            for (int i = 0; i < n; i++)
            {
                cumB += sel[i].Bytes;
                cum[i] = cumB;
                sumT += sel[i].T;
                sumB += cumB;
                sumO += i + 1;
            }

            double meanT = sumT / n, meanB = sumB / n, meanO = sumO / n;
            double varT = 0, covB = 0, covO = 0;
            for (int i = 0; i < n; i++)
            {
                double dt = sel[i].T - meanT;
                varT += dt * dt;
                covB += dt * (cum[i] - meanB);
                covO += dt * (i + 1 - meanO);
            }

            return (covB / varT, covO / varT);
        }
    }

    private static Task RunAsync(BlockBackend dev, bool write, int workers, int size, long region, double seconds, Stopwatch clock, Load load)
    {
        var tasks = new Task[workers];
        for (int w = 0; w < workers; w++)
        {
            long offset = region + ((long)w * size);
            tasks[w] = Task.Run(async () =>
            {
                var buf = new byte[size];
                buf.AsSpan().Fill((byte)(w + 1));
                while (clock.Elapsed.TotalSeconds < seconds)
                {
                    if (write)
                        await dev.WriteAsync(offset, buf);
                    else
                        await dev.ReadAsync(offset, buf);
                    load.Add(clock.Elapsed.TotalSeconds, size);
                }
            });
        }

        return Task.WhenAll(tasks);
    }

    private void Check(string what, double limit, double measured)
    {
        double dev = (measured - limit) / limit;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{what}: limit {limit:F0}/s, measured {measured:F0}/s ({(dev >= 0 ? "+" : "")}{dev * 100:F1}%), allowed -{Under * 100:F0}% to +{Over * 100:F0}%"));
        Assert.InRange(measured, limit * (1 - Under), limit * (1 + Over));
    }

    private static async Task<(QmpHarness H, BlockBackend Dev)> StartAsync()
    {
        var h = await QmpHarness.StartAsync();
        string img = h.Dir.PatternFile("a.img", 8 * MiB);
        var dev = await h.AddRawAsync("d0", img);
        // Warm up unthrottled (JIT, thread pool) so a slow start does not leave unused credit in the
        // buckets that the measured window would then spend.
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(RunAsync(dev, false, 8, 4096, 0, 0.2, clock, new Load()), RunAsync(dev, true, 8, 4096, 4 * MiB, 0.2, clock, new Load()));
        return (h, dev);
    }

    private static string Limits(string extra = "", long bps = 0, long bpsRd = 0, long bpsWr = 0, long iops = 0, long iopsRd = 0, long iopsWr = 0) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{{\"device\": \"d0\", \"bps\": {bps}, \"bps_rd\": {bpsRd}, \"bps_wr\": {bpsWr}, \"iops\": {iops}, \"iops_rd\": {iopsRd}, \"iops_wr\": {iopsWr}{extra}}}");

    [Fact]
    public async Task Reads_and_writes_keep_to_their_limits_at_the_same_time()
    {
        var (h, dev) = await StartAsync();
        await using var _ = h;
        await h.Client.ReturnAsync("block_set_io_throttle", Limits(bpsRd: 4 * MiB, bpsWr: 2 * MiB));
        var clock = Stopwatch.StartNew();
        Load reads = new(), writes = new();
        await Task.WhenAll(
            RunAsync(dev, false, 8, 32 << 10, 0, 2.0, clock, reads),
            RunAsync(dev, true, 8, 32 << 10, 4 * MiB, 2.0, clock, writes));
        Check("bps_rd (bytes read)", 4 * MiB, reads.Rate(0.4, 2.0).Bytes);
        Check("bps_wr (bytes written)", 2 * MiB, writes.Rate(0.4, 2.0).Bytes);
    }

    [Fact]
    public async Task Iops_limits_hold_per_direction()
    {
        var (h, dev) = await StartAsync();
        await using var _ = h;
        await h.Client.ReturnAsync("block_set_io_throttle", Limits(iopsRd: 200, iopsWr: 100));
        var clock = Stopwatch.StartNew();
        Load reads = new(), writes = new();
        await Task.WhenAll(
            RunAsync(dev, false, 8, 4096, 0, 2.0, clock, reads),
            RunAsync(dev, true, 8, 4096, 4 * MiB, 2.0, clock, writes));
        Check("iops_rd (reads)", 200, reads.Rate(0.4, 2.0).Ops);
        Check("iops_wr (writes)", 100, writes.Rate(0.4, 2.0).Ops);
    }

    [Fact]
    public async Task Iops_size_counts_large_requests_as_several_operations()
    {
        var (h, dev) = await StartAsync();
        await using var _ = h;
        // 16 KiB requests with iops_size 4 KiB count 4 operations each: 800 iops is 200 requests a second
        // (enough requests in the window that one more or less stays well inside the tolerance).
        await h.Client.ReturnAsync("block_set_io_throttle", Limits(", \"iops_size\": 4096", iops: 800));
        // Counting one operation per request would let 800 requests a second through: far above the ceiling.
        var clock = Stopwatch.StartNew();
        var reads = new Load();
        await RunAsync(dev, false, 8, 16 << 10, 0, 2.0, clock, reads);
        double measured = reads.Rate(0.4, 2.0).Ops;
        Check("iops with iops_size 4096 (16 KiB requests)", 200, measured);
    }

    [Fact]
    public async Task A_total_limit_is_shared_fairly_between_readers_and_writers()
    {
        var (h, dev) = await StartAsync();
        await using var _ = h;
        await h.Client.ReturnAsync("block_set_io_throttle", Limits(bps: 4 * MiB));
        var clock = Stopwatch.StartNew();
        Load reads = new(), writes = new();
        // Unequal pressure: eight readers against two writers. Taking turns still gives each side half.
        await Task.WhenAll(
            RunAsync(dev, false, 8, 32 << 10, 0, 1.5, clock, reads),
            RunAsync(dev, true, 2, 32 << 10, 4 * MiB, 1.5, clock, writes));
        double r = reads.Rate(0.4, 1.5).Bytes, w = writes.Rate(0.4, 1.5).Bytes;
        Check("bps (total of reads and writes)", 4 * MiB, r + w);
        double share = w / (r + w);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"writers' share with 8 readers and 2 writers: {share * 100:F1}% (fair: 50%)"));
        Assert.InRange(share, 0.45, 0.55);
    }

    [Fact]
    public async Task Bursts_go_through_up_to_max_then_the_average_applies()
    {
        var (h, dev) = await StartAsync();
        await using var _ = h;
        await h.Client.ReturnAsync("block_set_io_throttle", Limits(", \"bps_wr_max\": 3145728", bpsWr: MiB));
        var clock = Stopwatch.StartNew();
        var writes = new Load();
        await RunAsync(dev, true, 8, 16 << 10, 0, 2.0, clock, writes);
        // The bucket holds bps_wr_max bytes: that much goes through at once, then 1 MiB/s. At the average
        // alone the first 3 MiB would take 2.9 s; and at no time may more than the burst plus what drained
        // at the average (plus the requests in flight) have gone through.
        var (burstAt, worst) = writes.Burst(3 * MiB, MiB, 8 * (16 << 10));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"first 3145728 bytes (bps_wr_max) written after {burstAt:F3} s (at the average alone: 2.900 s); most above burst + average at any time: {worst} bytes (allowed: 0)"));
        Assert.True(burstAt < 1.0, $"the burst took {burstAt:F3} s");
        Assert.True(worst <= 0, $"{worst} bytes more than burst + average allow");
        Check("bps_wr after the burst", MiB, writes.Rate(burstAt + 0.3, 2.0).Bytes);
    }

    [Fact]
    public async Task New_limits_apply_at_once_to_queued_requests()
    {
        var (h, dev) = await StartAsync();
        await using var _ = h;
        await h.Client.ReturnAsync("block_set_io_throttle", Limits(bpsWr: 64 << 10));
        var writes = new List<Task>();
        for (int i = 0; i < 8; i++)
            writes.Add(dev.WriteAsync((long)i * (64 << 10), new byte[64 << 10]).AsTask());
        await Task.Delay(100);
        int done = writes.Count(t => t.IsCompleted);
        Assert.True(done <= 2, $"{done} writes got through a 64 KiB/s limit at once");
        var sw = Stopwatch.StartNew();
        await h.Client.ReturnAsync("block_set_io_throttle", Limits());
        await Task.WhenAll(writes).WaitAsync(TimeSpan.FromSeconds(5));
        output.WriteLine($"queued writes finished {sw.ElapsedMilliseconds} ms after the limit was switched off (at the old limit: ~7000 ms)");
        Assert.True(sw.ElapsedMilliseconds < 3000, $"{sw.ElapsedMilliseconds} ms: the old limit still applied");
    }

    [Fact]
    public async Task Limits_show_in_query_block_and_bad_values_get_qemus_errors()
    {
        var (h, _) = await StartAsync();
        await using var __ = h;
        var ins = (await h.QueryDeviceAsync("d0")).GetProperty("inserted");
        Assert.Equal(0, ins.GetProperty("bps").GetInt64());
        Assert.False(ins.TryGetProperty("bps_max", out _));

        await h.Client.ReturnAsync("block_set_io_throttle", Limits(", \"bps_rd_max\": 2000000, \"iops_wr_max\": 50, \"iops_size\": 8192",
            bpsRd: 1000000, bpsWr: 500000, iopsRd: 30, iopsWr: 40));
        ins = (await h.QueryDeviceAsync("d0")).GetProperty("inserted");
        Assert.Equal(0, ins.GetProperty("bps").GetInt64());
        Assert.Equal(1000000, ins.GetProperty("bps_rd").GetInt64());
        Assert.Equal(500000, ins.GetProperty("bps_wr").GetInt64());
        Assert.Equal(0, ins.GetProperty("iops").GetInt64());
        Assert.Equal(30, ins.GetProperty("iops_rd").GetInt64());
        Assert.Equal(40, ins.GetProperty("iops_wr").GetInt64());
        Assert.Equal(2000000, ins.GetProperty("bps_rd_max").GetInt64());
        Assert.Equal(50, ins.GetProperty("iops_wr_max").GetInt64());
        Assert.Equal(8192, ins.GetProperty("iops_size").GetInt64());
        Assert.False(ins.TryGetProperty("bps_wr_max", out _));

        async Task Refused(string args, string message)
        {
            var (cls, desc) = await h.Client.ErrorAsync("block_set_io_throttle", args);
            Assert.Equal("GenericError", cls);
            Assert.Equal(message, desc);
        }

        await Refused(Limits(bps: 1000, bpsRd: 10), "bps/iops/max total values and read/write values cannot be used at the same time");
        await Refused(Limits(iops: 10, iopsWr: 10), "bps/iops/max total values and read/write values cannot be used at the same time");
        await Refused(Limits(bps: -1), "bps/iops/max values must be within [0, 1000000000000000]");
        await Refused(Limits(iopsRd: 1000000000000001), "bps/iops/max values must be within [0, 1000000000000000]");
        await Refused(Limits(", \"bps_max\": 100"), "bps_max/iops_max require corresponding bps/iops values");
        await Refused(Limits(", \"iops_max\": 5", iops: 10), "bps_max/iops_max cannot be lower than bps/iops");
        await Refused(Limits(", \"iops_size\": 4096", bps: 10), "iops size requires an iops value to be set");
        var (c, d) = await h.Client.ErrorAsync("block_set_io_throttle", Limits().Replace("d0", "nope", StringComparison.Ordinal));
        Assert.Equal(("DeviceNotFound", "Device 'nope' not found"), (c, d));

        // A refused call changed nothing; zeros switch throttling off.
        Assert.Equal(1000000, (await h.QueryDeviceAsync("d0")).GetProperty("inserted").GetProperty("bps_rd").GetInt64());
        await h.Client.ReturnAsync("block_set_io_throttle", Limits());
        ins = (await h.QueryDeviceAsync("d0")).GetProperty("inserted");
        Assert.Equal(0, ins.GetProperty("bps_rd").GetInt64());
        Assert.False(ins.TryGetProperty("iops_size", out _));
    }
}
