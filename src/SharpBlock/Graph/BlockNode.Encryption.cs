using SharpBlock.Errors;

namespace SharpBlock.Graph;

/// <summary>
/// Keys for encrypted images. A node may open without its key: metadata works (info, check, map, snapshots),
/// data I/O waits for the key. These helpers treat a node and everything below it (backing chain, filtered
/// children) as one unit, the way block_passwd, query-block and cont see a device.
/// </summary>
public abstract partial class BlockNode
{
    /// <summary>Gives the node its key. Nodes that are not encrypted refuse.</summary>
    public virtual void SetEncryptionKey(string password) =>
        throw new BlockException(Errno.EINVAL, $"Node '{NodeName}' is not encrypted");

    /// <summary>Completes once this node has its key (at once for nodes that need none).</summary>
    public virtual Task KeyProvided => Task.CompletedTask;

    /// <summary>Whether this node or any node below it is encrypted.</summary>
    public bool ChainEncrypted
    {
        get
        {
            if (Encrypted)
                return true;
            for (int i = 0; i < _children.Count; i++)
            {
                if (_children[i].Node.ChainEncrypted)
                    return true;
            }

            return false;
        }
    }

    /// <summary>Whether this node or any node below it still waits for its key before data can flow.</summary>
    public bool KeyRequired => NodeNeedingKey() != null;

    /// <summary>
    /// The node whose missing key holds up data I/O, looking below first (a backing file's key is asked for
    /// before the overlay's, as QEMU names the backing file in its "is encrypted" error); null when none.
    /// </summary>
    public BlockNode? NodeNeedingKey()
    {
        // Indexed, not foreach over the interface: qcow2 asks this on every request of an image with a
        // backing file, and an interface enumerator would allocate each time.
        for (int i = 0; i < _children.Count; i++)
        {
            if (_children[i].Node.NodeNeedingKey() is { } below)
                return below;
        }

        return EncryptionKeyMissing ? this : null;
    }

    /// <summary>
    /// block_passwd: gives the password to every encrypted node of this subtree (a backing file encrypted with
    /// the same password unlocks with its overlay). Returns false when nothing in it is encrypted.
    /// </summary>
    public bool SetChainEncryptionKey(string password)
    {
        bool any = false;
        for (int i = 0; i < _children.Count; i++)
            any |= _children[i].Node.SetChainEncryptionKey(password);
        if (Encrypted)
        {
            SetEncryptionKey(password);
            any = true;
        }

        return any;
    }
}
