namespace SharpBlock.Drivers.Protocol.Vvfat;

/// <summary>A host file or directory as the disk shows it: where it lives on the host, its first cluster and size.</summary>
internal sealed record FatServedEntry(string HostPath, int FirstCluster, uint Size, bool IsDirectory);
