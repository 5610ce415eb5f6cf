namespace SharpBlock.Nbd.Protocol;

/// <summary>Magic numbers and limits of the NBD protocol (the NBD project's doc/proto.md).</summary>
public static class NbdConstants
{
    /// <summary>"NBDMAGIC": first 8 bytes the server sends.</summary>
    public const ulong NbdMagic = 0x4e42444d41474943;

    /// <summary>"IHAVEOPT": newstyle negotiation marker, sent by the server and before every client option.</summary>
    public const ulong IHaveOpt = 0x49484156454F5054;

    /// <summary>Magic of every option reply.</summary>
    public const ulong OptionReplyMagic = 0x3e889045565a9;

    public const uint RequestMagic = 0x25609513;
    public const uint SimpleReplyMagic = 0x67446698;
    public const uint StructuredReplyMagic = 0x668e33ef;

    /// <summary>
    /// The largest READ/WRITE payload we accept or send. A longer request would make us buffer whatever a
    /// peer claims; 32 MiB is what qemu and nbdkit use, so every real client already stays below it.
    /// </summary>
    public const int MaxPayload = 32 << 20;

    /// <summary>Option payloads are names and small lists; anything bigger is hostile.</summary>
    public const int MaxOptionLength = 64 << 10;

    /// <summary>Longest export name or description (the spec's limit for strings).</summary>
    public const int MaxStringLength = 4096;

    /// <summary>The padding after an NBD_OPT_EXPORT_NAME reply unless NO_ZEROES was agreed.</summary>
    public const int ExportNameZeroPad = 124;

    /// <summary>The one metadata context we implement.</summary>
    public const string BaseAllocation = "base:allocation";

    /// <summary>The id we give base:allocation when a client selects it.</summary>
    public const uint BaseAllocationId = 1;

    /// <summary>The flag of a qemu:dirty-bitmap extent whose bits are set.</summary>
    public const uint StateDirty = 1;
}
