namespace SharpBlock.Graph;

/// <summary>One registered user that keeps a device's medium in place; dispose to unregister.</summary>
public sealed class DeviceBlocker : IDisposable
{
    private BlockBackend? _device;

    internal DeviceBlocker(BlockBackend device, string reason, Func<ValueTask>? onForcedEject)
    {
        _device = device;
        Reason = reason;
        OnForcedEject = onForcedEject;
    }

    /// <summary>Shown after "Device 'x' is busy: ", e.g. "block device is in use by block job: mirror".</summary>
    public string Reason { get; }

    internal Func<ValueTask>? OnForcedEject { get; }

    public void Dispose() => Interlocked.Exchange(ref _device, null)?.RemoveBlocker(this);
}
