namespace SharpBlock.Graph;

/// <summary>One registered user of a device's medium (a job holds it, an export follows it); dispose to unregister.</summary>
public sealed class DeviceBlocker : IDisposable
{
    private BlockBackend? _device;

    internal DeviceBlocker(BlockBackend device, string reason, Func<ValueTask>? onEject)
    {
        _device = device;
        Reason = reason;
        OnEject = onEject;
    }

    /// <summary>Shown after "Device 'x' is busy: ", e.g. "block device is in use by block job: mirror".</summary>
    public string Reason { get; }

    /// <summary>How the user lets go when the medium goes; null for a user that holds the medium (a job).</summary>
    internal Func<ValueTask>? OnEject { get; }

    public void Dispose() => Interlocked.Exchange(ref _device, null)?.RemoveBlocker(this);
}
