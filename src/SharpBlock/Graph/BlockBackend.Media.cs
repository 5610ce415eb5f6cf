using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Graph;

public sealed partial class BlockBackend
{
    private readonly object _stateLock = new();
    private readonly List<DeviceBlocker> _blockers = [];

    /// <summary>Devices made by blockdev-add have no guest device model, so like QEMU they count as removable.</summary>
    public bool Removable => true;

    public bool Locked => false;

    private bool _trayOpen;

    /// <summary>
    /// The tray: a host CD-ROM drive's own where the medium sits on one that says, else the model's (opened by
    /// eject, closed by change).
    /// </summary>
    public bool TrayOpen => HostMedium()?.HostTrayOpen ?? _trayOpen;

    /// <summary>The removable host drive at the bottom of the medium's file chain, if the medium sits on one.</summary>
    private IHostMedium? HostMedium()
    {
        for (var n = _root; n != null; n = n.File)
        {
            if (n is IHostMedium { IsRemovable: true } m)
                return m;
        }

        return null;
    }

    /// <summary>
    /// Registers a user of the medium. Without <paramref name="onEject"/> it holds the medium, as QEMU 2.1's
    /// op blockers do for a block job: eject and change refuse, forced or not. With it the user only wants to
    /// know: eject and change call it first so the user lets go (an NBD export ends, as 2.1's close notifier
    /// ends it), then go ahead. Dispose the result to unregister.
    /// </summary>
    public DeviceBlocker AddBlocker(string reason, Func<ValueTask>? onEject = null)
    {
        var b = new DeviceBlocker(this, reason, onEject);
        lock (_blockers)
            _blockers.Add(b);
        return b;
    }

    internal void RemoveBlocker(DeviceBlocker blocker)
    {
        lock (_blockers)
            _blockers.Remove(blocker);
    }

    /// <summary>Why the medium cannot be removed now, or null when nothing holds it.</summary>
    public string? BusyReason
    {
        get
        {
            lock (_blockers)
                return _blockers.Find(b => b.OnEject == null)?.Reason;
        }
    }

    private async ValueTask CheckBlockersAsync()
    {
        DeviceBlocker[] blockers;
        lock (_blockers)
            blockers = [.. _blockers];
        foreach (var b in blockers)
        {
            if (b.OnEject == null)
                throw new BlockException(Errno.EBUSY, $"Device '{Id}' is busy: {b.Reason}");
        }

        foreach (var b in blockers)
        {
            await b.OnEject!().ConfigureAwait(false);
            b.Dispose();
        }
    }

    /// <summary>
    /// The 'eject' command: refuses while a job holds the device, ends exports, opens the tray and removes the
    /// medium.
    /// </summary>
    public async ValueTask EjectMediumAsync()
    {
        await CheckBlockersAsync().ConfigureAwait(false);
        // The drive's own tray opens too, as a guest's eject opens it in QEMU. A drive that cannot (no CD-ROM
        // drive at all, a medium the host has mounted) does not stop the eject: QEMU only prints the failure.
        _ = HostMedium()?.EjectHostMedium(eject: true);
        MoveTray(open: true);
        await EjectAsync().ConfigureAwait(false);
    }

    /// <summary>The 'change' command: swaps the medium for one the caller opened, moving the tray out and in.</summary>
    public async ValueTask ChangeMediumAsync(BlockNode newRoot)
    {
        await CheckBlockersAsync().ConfigureAwait(false);
        MoveTray(open: true);
        await EjectAsync().ConfigureAwait(false);
        await Gate.BeginDrainAsync().ConfigureAwait(false);
        try
        {
            newRoot.AddUser(this);
            _root = newRoot;
        }
        finally
        {
            Gate.EndDrain();
        }

        MoveTray(open: false);
    }

    private void MoveTray(bool open)
    {
        lock (_stateLock)
        {
            if (_trayOpen == open)
                return;
            _trayOpen = open;
        }

        Graph.Events.Raise(new DeviceTrayMovedEvent { Device = Id, TrayOpen = open });
    }

    /// <summary>
    /// Raised after the medium was removed (eject, blockdev-del). Users that outlive a medium, such as NBD
    /// exports, end themselves here as QEMU's close notifiers do.
    /// </summary>
    public event Action<BlockBackend>? MediumRemoved;

    /// <summary>Removes the medium: drains, flushes and closes the node tree unless something else holds it.</summary>
    public ValueTask EjectAsync() => DetachRootAsync(closeUnused: true);

    /// <summary>
    /// Lets go of the root without closing it: for a device that only borrowed a node someone else named
    /// (an export of a bare node), whose node must outlive it and become deletable again.
    /// </summary>
    public ValueTask ReleaseRootAsync() => DetachRootAsync(closeUnused: false);

    private async ValueTask DetachRootAsync(bool closeUnused)
    {
        var root = _root;
        if (root == null)
            return;
        await Gate.BeginDrainAsync().ConfigureAwait(false);
        try
        {
            _root = null;
            root.RemoveUser(this);
            if (closeUnused && root.Users.Count == 0)
                await Graph.CloseNodeAsync(root).ConfigureAwait(false);
            else
                await root.FlushAsync().ConfigureAwait(false);
        }
        finally
        {
            Gate.EndDrain();
        }

        MediumRemoved?.Invoke(this);
    }
}
