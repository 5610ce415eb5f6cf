using SharpBlock.Schema;

namespace SharpBlock.Drivers.Filter.Blkdebug;

/// <summary>
/// The rule engine of one blkdebug node. An event arms the inject rules written for it (in the current
/// state) and applies the set-state rules; the armed rules then fail the requests that pass the filter
/// until another event arms a different set or a 'once' rule has fired.
/// </summary>
internal sealed class BlkdebugRules
{
    private readonly object _lock = new();
    private readonly List<BlkdebugInjectRule> _inject;
    private readonly List<BlkdebugStateRule> _setState;
    private readonly List<BlkdebugInjectRule> _armed = [];
    private int _state = 1;

    public BlkdebugRules(List<BlkdebugInjectRule> inject, List<BlkdebugStateRule> setState)
    {
        _inject = inject;
        _setState = setState;
    }

    public int State
    {
        get
        {
            lock (_lock)
                return _state;
        }
    }

    public void Fire(BlkdebugEvent e)
    {
        lock (_lock)
        {
            // Every rule sees the state as it was when the event fired, so two set-state rules for one
            // event never chain into each other.
            int current = _state;
            bool armedAny = false;
            foreach (var r in _inject)
            {
                if (r.Event != e || (r.State != 0 && r.State != current))
                    continue;
                if (!armedAny)
                {
                    _armed.Clear();
                    armedAny = true;
                }

                _armed.Add(r);
            }

            foreach (var r in _setState)
            {
                if (r.Event == e && (r.State == 0 || r.State == current))
                    _state = r.NewState;
            }
        }
    }

    /// <summary>The armed rule that fails a request over [offset, offset+length), if any; 'once' rules are used up.</summary>
    public BlkdebugInjectRule? Check(long offset, long length)
    {
        lock (_lock)
        {
            foreach (var r in _armed)
            {
                if (!r.Matches(offset, length))
                    continue;
                if (r.Once)
                {
                    _armed.Remove(r);
                    _inject.Remove(r);
                }

                return r;
            }
        }

        return null;
    }
}
