namespace SharpBlock.Qmp.Server;

/// <summary>
/// The QEMU version the server claims. The seed's 2.1 by default, because the wire contract is the 2.1 schema
/// and a client that reads 2.1 may rely on 2.1 behaviour; 7.2 for management software that refuses to talk to
/// a QEMU older than it supports (libvirt gates on the version before it probes the schema). The schema served
/// is the same either way: query-qmp-schema says what actually exists.
/// </summary>
public enum QmpVersion
{
    /// <summary>QEMU 2.1.0, the seed schema's version.</summary>
    Seed,

    /// <summary>QEMU 7.2.0, the release whose storage daemon the 7.2 commands follow.</summary>
    Qemu72,
}
