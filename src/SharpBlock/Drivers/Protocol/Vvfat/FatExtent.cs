namespace SharpBlock.Drivers.Protocol.Vvfat;

/// <summary>
/// A run of consecutive clusters holding one thing: a directory (its entries, built in memory) or a host
/// file's data (read from the file when a guest reads the clusters).
/// </summary>
internal sealed class FatExtent
{
    public required int FirstCluster { get; init; }
    public required int Clusters { get; init; }

    /// <summary>The directory's bytes (whole clusters), or null for file data.</summary>
    public byte[]? Directory { get; set; }

    /// <summary>The host file whose data these clusters hold, or null for a directory.</summary>
    public string? HostPath { get; init; }

    public long Size { get; init; }

    public int EndCluster => FirstCluster + Clusters;
}
