using SharpBlock.Drivers.Creation;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>The qcow2 creation options, with qemu-img's defaults.</summary>
public sealed record Qcow2CreateOptions
{
    public required long Size { get; init; }
    public int ClusterSize { get; init; } = 1 << Qcow2Layout.DefaultClusterBits;

    /// <summary>"0.10" (version 2) or "1.1" (version 3).</summary>
    public string Compat { get; init; } = "1.1";
    public bool LazyRefcounts { get; init; }
    public int RefcountBits { get; init; } = 16;
    public Preallocation Preallocation { get; init; } = Preallocation.Off;
    public string? BackingFile { get; init; }
    public string? BackingFormat { get; init; }

    /// <summary>Legacy AES encryption (crypt_method 1). Only the header records it, so no key is needed to create.</summary>
    public bool Encrypted { get; init; }
}
