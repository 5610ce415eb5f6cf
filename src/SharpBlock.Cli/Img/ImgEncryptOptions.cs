using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Cli.Img;

/// <summary>
/// The encryption options of create and convert (-o): "encryption=on" (the old spelling) or
/// "encrypt.format=aes" make a legacy AES qcow2 image; "encrypt.key-secret=ID" names the --object secret
/// whose text is the password for writing data into it.
/// </summary>
internal static class ImgEncryptOptions
{
    public const string Encryption = "encryption";
    public const string Format = "encrypt.format";
    public const string KeySecret = "encrypt.key-secret";

    /// <summary>Whether the options ask for an encrypted image, checked with qemu-img's words.</summary>
    public static bool IsEncrypted(IReadOnlyDictionary<string, string> opts, string fmt)
    {
        bool hasAlias = opts.TryGetValue(Encryption, out var alias);
        bool hasFormat = opts.TryGetValue(Format, out var format);
        if (!hasAlias && !hasFormat)
            return false;
        if (hasAlias && hasFormat)
            throw new ImgUsageException($"'{Format}' and its alias '{Encryption}' can't be used at the same time");
        if (fmt != "qcow2")
            throw new ImgUsageException($"Invalid parameter '{(hasAlias ? Encryption : Format)}'");
        if (hasAlias)
        {
            return alias switch
            {
                "on" or "true" or "yes" => true,
                "off" or "false" or "no" => false,
                _ => throw new ImgUsageException($"Parameter '{Encryption}' expects 'on' or 'off'"),
            };
        }

        return format switch
        {
            "aes" => true,
            "luks" => throw new ImgUsageException("Encryption format 'luks' is not supported; only 'aes' (legacy qcow2 encryption) is"),
            _ => throw new ImgUsageException($"Parameter '{Format}' does not accept value '{format}'"),
        };
    }

    /// <summary>The options qemu-img echoes in its "Formatting ..." line, in its order, right after fmt=qcow2.</summary>
    public static string Describe(IReadOnlyDictionary<string, string> opts)
    {
        string s = "";
        foreach (var key in (ReadOnlySpan<string>)[Encryption, Format, KeySecret])
        {
            if (opts.TryGetValue(key, out var v))
                s += $" {key}={v}";
        }

        return s;
    }

    /// <summary>The password named by encrypt.key-secret, or null when the option is absent.</summary>
    public static string? FindKey(IReadOnlyDictionary<string, string> opts, ImgSecrets secrets) =>
        opts.TryGetValue(KeySecret, out var id)
            ? secrets.Find(id) ?? throw new ImgUsageException($"No secret with id '{id}'")
            : null;

    /// <summary>
    /// Unlocks a target image that convert (or dd) is about to fill: an encrypted target needs
    /// encrypt.key-secret, as qemu-img demands when it creates one.
    /// </summary>
    public static void UnlockTarget(BlockNode target, string name, IReadOnlyDictionary<string, string> opts, ImgSecrets secrets)
    {
        if (!target.Encrypted)
            return;
        string key = FindKey(opts, secrets) ?? throw new BlockException(Errno.EACCES, $"{name}: {ImgImage.KeyRequiredMessage}");
        target.SetEncryptionKey(key);
    }
}
