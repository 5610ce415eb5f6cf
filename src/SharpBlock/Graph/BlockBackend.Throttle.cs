using SharpBlock.Errors;
using SharpBlock.Throttling;

namespace SharpBlock.Graph;

public sealed partial class BlockBackend
{
    // Null while no limit is set, so an unthrottled device pays one field read per request.
    private volatile RequestThrottle? _throttle;

    public ThrottleLimits ThrottleLimits => _throttle?.Limits ?? ThrottleLimits.None;

    /// <summary>
    /// block_set_io_throttle: validates and applies new limits. They take effect at once for queued
    /// requests; all-zero limits switch throttling off and release everything queued.
    /// </summary>
    public void SetThrottleLimits(ThrottleLimits limits)
    {
        if (limits.Validate() is { } problem)
            throw new BlockException(Errno.EINVAL, problem);
        lock (_stateLock)
        {
            if (limits.IsEnabled)
            {
                var t = _throttle ?? new RequestThrottle();
                t.SetLimits(limits);
                _throttle = t;
            }
            else if (_throttle is { } old)
            {
                _throttle = null;
                old.SetLimits(limits);
                old.Dispose();
            }
        }
    }
}
