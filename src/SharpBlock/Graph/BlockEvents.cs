using SharpBlock.Schema;

namespace SharpBlock.Graph;

/// <summary>The one bus every block-layer event goes through; QMP subscribes and fans out to its clients.</summary>
public sealed class BlockEvents
{
    public event Action<IQapiEvent>? Raised;

    public void Raise(IQapiEvent e) => Raised?.Invoke(e);
}
