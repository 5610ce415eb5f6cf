using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Drivers.Format.LegacyAes;

/// <summary>
/// The key state of an image with legacy AES: absent until a password arrives (at open through
/// encrypt.key-secret, or later through block_passwd), then a cipher that requests pick up as they start.
/// A request already running keeps the cipher it started with when the password changes.
/// </summary>
internal sealed class LegacyAesKey
{
    private LegacyAesCipher? _cipher;
    private readonly TaskCompletionSource _provided = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool Missing => Volatile.Read(ref _cipher) == null;

    /// <summary>Completes when the first password arrives.</summary>
    public Task Provided => _provided.Task;

    /// <summary>The current cipher, or null while no password was given.</summary>
    public LegacyAesCipher? Cipher => Volatile.Read(ref _cipher);

    /// <summary>
    /// Data requests need the key of <paramref name="node"/>, and of an encrypted backing file they may read
    /// for copy-on-write: checked before any work, so a request held for the key has allocated nothing yet.
    /// </summary>
    public static void Require(BlockNode node)
    {
        if (node.EncryptionKeyMissing)
            throw new EncryptionKeyRequiredException(node);
        if (node.Backing?.NodeNeedingKey() is { } locked)
            throw new EncryptionKeyRequiredException(locked);
    }

    /// <summary>Any password is taken: the format stores nothing to check it against.</summary>
    public void Set(string password)
    {
        Volatile.Write(ref _cipher, new LegacyAesCipher(password));
        _provided.TrySetResult();
    }
}
