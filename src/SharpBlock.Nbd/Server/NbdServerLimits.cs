namespace SharpBlock.Nbd.Server;

/// <summary>Per-connection bounds of the NBD server.</summary>
public sealed record NbdServerLimits
{
    /// <summary>Requests one connection may have in flight; qemu and libnbd clients pipeline up to 16-64.</summary>
    public int MaxRequestsInFlight { get; init; } = 64;

    /// <summary>Payload bytes (write data and read buffers) one connection may hold at once.</summary>
    public long MaxBytesInFlight { get; init; } = 128L << 20;

    /// <summary>How long a client may take to finish negotiation before it is dropped.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Clients that may be connected at once (nbd-server-start's max-connections); 0 means no limit.</summary>
    public int MaxConnections { get; init; }

    public static NbdServerLimits Default { get; } = new();
}
