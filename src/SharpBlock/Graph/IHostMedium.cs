using SharpBlock.Errors;

namespace SharpBlock.Graph;

/// <summary>
/// A node over a host drive whose medium can be taken out (host_cdrom, host_floppy): the device above it
/// moves the drive's own tray when its medium is ejected, and reports the drive's tray where the drive says.
/// </summary>
public interface IHostMedium
{
    /// <summary>True when the node is over a removable drive at all; a fixed device answers false.</summary>
    bool IsRemovable { get; }

    /// <summary>The drive's tray as the drive reports it, or null when it cannot say.</summary>
    bool? HostTrayOpen { get; }

    /// <summary>Opens (or closes) the drive's tray; the errno the drive answered, 0 when it moved.</summary>
    Errno EjectHostMedium(bool eject);

    /// <summary>Locks or unlocks the drive's door; the errno the drive answered.</summary>
    Errno LockHostMedium(bool locked);
}
