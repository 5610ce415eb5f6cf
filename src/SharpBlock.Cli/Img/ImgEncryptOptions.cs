using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>
/// The key of an encrypted target (create, convert, dd): "-o encrypt.key-secret=ID" names the --object secret
/// whose text is the password. Whether the new image is encrypted at all is its format's business
/// (<see cref="ImageCreation.Encrypted"/>); this only finds the key.
/// </summary>
internal static class ImgEncryptOptions
{
    public const string KeySecret = "encrypt.key-secret";

    /// <summary>The password named by encrypt.key-secret, or null when the option is absent.</summary>
    public static string? FindKey(ImageOptionValues opts, ImgSecrets secrets) =>
        opts.Get(KeySecret) is { } id
            ? secrets.Find(id) ?? throw new ImgUsageException($"No secret with id '{id}'")
            : null;

    /// <summary>
    /// Unlocks a target image that convert (or dd) is about to fill: an encrypted target needs
    /// encrypt.key-secret, as qemu-img demands when it creates one.
    /// </summary>
    public static void UnlockTarget(BlockNode target, string name, ImageOptionValues opts, ImgSecrets secrets)
    {
        if (!target.Encrypted)
            return;
        string key = FindKey(opts, secrets) ?? throw new BlockException(Errno.EACCES, $"{name}: {ImgImage.KeyRequiredMessage}");
        target.SetEncryptionKey(key);
    }
}
