using SharpBlock.Graph;

namespace SharpBlock.Errors;

/// <summary>
/// Data I/O reached an encrypted image whose key was never given. A device parks the request until the key
/// arrives (block_passwd), as a guest waits behind a stopped VM; any other caller sees an EACCES failure.
/// </summary>
public sealed class EncryptionKeyRequiredException : BlockException
{
    public EncryptionKeyRequiredException(BlockNode node)
        : this(node, $"'{node.Filename}' is encrypted and its key has not been given")
    {
    }

    /// <summary>The same fact in the words of the command that refused (QEMU's DeviceEncrypted texts).</summary>
    public EncryptionKeyRequiredException(BlockNode node, string message)
        : base(Errno.EACCES, message)
    {
        Node = node;
    }

    /// <summary>The encrypted node that lacks its key.</summary>
    public BlockNode Node { get; }

    /// <summary>Completes once the node has a key.</summary>
    public Task KeyProvided => Node.KeyProvided;
}
