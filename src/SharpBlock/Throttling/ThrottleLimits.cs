using System.Globalization;

namespace SharpBlock.Throttling;

/// <summary>
/// The I/O limits of a device as block_set_io_throttle sets them: rates per second (0 = no limit), the burst
/// each rate may reach (0 = a tenth of a second's worth), and the request size that counts as one operation.
/// </summary>
public sealed record ThrottleLimits
{
    /// <summary>QEMU's ceiling for every rate and burst value (THROTTLE_VALUE_MAX).</summary>
    public const long ValueMax = 1_000_000_000_000_000;

    public long Bps { get; init; }
    public long BpsRead { get; init; }
    public long BpsWrite { get; init; }
    public long Iops { get; init; }
    public long IopsRead { get; init; }
    public long IopsWrite { get; init; }
    public long BpsMax { get; init; }
    public long BpsReadMax { get; init; }
    public long BpsWriteMax { get; init; }
    public long IopsMax { get; init; }
    public long IopsReadMax { get; init; }
    public long IopsWriteMax { get; init; }
    public long IopsSize { get; init; }

    public static ThrottleLimits None { get; } = new();

    public bool IsEnabled => (Bps | BpsRead | BpsWrite | Iops | IopsRead | IopsWrite) != 0;

    /// <summary>The rate and burst of one bucket, in the order <see cref="ThrottleBucket"/> numbers them.</summary>
    internal (long Avg, long Max) Bucket(ThrottleBucket b) => b switch
    {
        ThrottleBucket.BpsTotal => (Bps, BpsMax),
        ThrottleBucket.BpsRead => (BpsRead, BpsReadMax),
        ThrottleBucket.BpsWrite => (BpsWrite, BpsWriteMax),
        ThrottleBucket.OpsTotal => (Iops, IopsMax),
        ThrottleBucket.OpsRead => (IopsRead, IopsReadMax),
        _ => (IopsWrite, IopsWriteMax),
    };

    /// <summary>Checks the limits as QEMU does; returns QEMU's message for the first problem, or null.</summary>
    public string? Validate()
    {
        // A total limit and a per-direction limit on the same quantity would contradict each other.
        if ((Bps != 0 && (BpsRead != 0 || BpsWrite != 0)) || (Iops != 0 && (IopsRead != 0 || IopsWrite != 0))
            || (BpsMax != 0 && (BpsReadMax != 0 || BpsWriteMax != 0)) || (IopsMax != 0 && (IopsReadMax != 0 || IopsWriteMax != 0)))
            return "bps/iops/max total values and read/write values cannot be used at the same time";
        if (IopsSize != 0 && Iops == 0 && IopsRead == 0 && IopsWrite == 0)
            return "iops size requires an iops value to be set";
        for (var b = ThrottleBucket.BpsTotal; b <= ThrottleBucket.OpsWrite; b++)
        {
            var (avg, max) = Bucket(b);
            // Negative values are out of range too: QEMU reads them as huge unsigned numbers.
            if (avg is < 0 or > ValueMax || max is < 0 or > ValueMax)
                return "bps/iops/max values must be within [0, " + ValueMax.ToString(CultureInfo.InvariantCulture) + "]";
            if (max != 0 && avg == 0)
                return "bps_max/iops_max require corresponding bps/iops values";
            if (max != 0 && max < avg)
                return "bps_max/iops_max cannot be lower than bps/iops";
        }

        if (IopsSize is < 0 or > ValueMax)
            return "bps/iops/max values must be within [0, " + ValueMax.ToString(CultureInfo.InvariantCulture) + "]";
        return null;
    }
}

/// <summary>The six buckets of a throttle: bytes and operations, in total and per direction.</summary>
internal enum ThrottleBucket
{
    BpsTotal,
    BpsRead,
    BpsWrite,
    OpsTotal,
    OpsRead,
    OpsWrite,
}
