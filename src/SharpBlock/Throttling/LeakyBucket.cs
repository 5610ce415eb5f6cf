namespace SharpBlock.Throttling;

/// <summary>
/// One rate limit as a leaky bucket: each request pours its cost in, the bucket drains at the average
/// rate, and a request may start while the bucket is below its size. The size is the burst: 'max' units
/// when a burst was set (so up to max units go through at once before the average applies), else a tenth
/// of a second at the average rate so that small requests are not delayed one by one.
/// </summary>
internal struct LeakyBucket
{
    public double Avg;
    public double Max;
    public double Level;

    public void Leak(double seconds)
    {
        if (Avg <= 0)
            return;
        Level = Math.Max(0, Level - (Avg * seconds));
    }

    /// <summary>Seconds until a request may start, 0 when it may start now.</summary>
    public readonly double Wait()
    {
        if (Avg <= 0)
            return 0;
        double size = Max > 0 ? Max : Avg / 10;
        double extra = Level - size;
        return extra > 0 ? extra / Avg : 0;
    }

    public void Account(double units)
    {
        if (Avg > 0)
            Level += units;
    }
}
