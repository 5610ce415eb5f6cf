using System.Security.Cryptography;
using SharpBlock.Errors;

namespace SharpBlock.Graph;

/// <summary>
/// Turns the properties of a secret object (QEMU's secret: data or file, format raw or base64, and keyid
/// with iv for a secret encrypted under a master key) into its value, with QEMU 7.2's refusals. The daemon's
/// --object, QMP's object-add and the image tool's --object all load secrets here.
/// </summary>
public static class SecretLoader
{
    /// <summary>The 256-bit AES key a keyid must name.</summary>
    public const int MasterKeyBytes = 32;

    /// <summary>The IV of the AES-CBC ciphertext.</summary>
    public const int IvBytes = 16;

    /// <summary>
    /// The secret's value. format says how data (or the file's text) is written; with keyid it is the
    /// AES-256-CBC ciphertext (base64 when format is base64), decrypted with the master secret from store.
    /// </summary>
    public static byte[] Load(SecretStore store, string? data, string? file, bool base64, string? keyid, string? iv)
    {
        if (data != null && file != null)
            throw new BlockException(Errno.EINVAL, "'file' and 'data' are mutually exclusive");
        byte[] input;
        if (data != null)
        {
            input = System.Text.Encoding.UTF8.GetBytes(data);
        }
        else if (file != null)
        {
            // Used verbatim, a trailing newline included, as QEMU reads it.
            try
            {
                input = File.ReadAllBytes(file);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                var errno = BlockException.ErrnoOf(ex, file);
                throw new BlockException(errno, $"Unable to read {file}: Failed to open file \u201c{file}\u201d: {BlockException.Describe(errno)}");
            }
        }
        else
        {
            throw new BlockException(Errno.EINVAL, "Either 'file' or 'data' must be provided");
        }

        if (keyid != null)
            return Decrypt(store, input, base64, keyid, iv);
        return base64 ? Base64(input) : input;
    }

    private static byte[] Decrypt(SecretStore store, byte[] input, bool base64, string keyid, string? iv)
    {
        byte[] key = store.GetBytes(keyid);
        if (key.Length != MasterKeyBytes)
            throw new BlockException(Errno.EINVAL, $"Key should be {MasterKeyBytes} bytes in length");
        if (iv == null)
            throw new BlockException(Errno.EINVAL, "IV is required to decrypt secret");
        byte[] ivBytes = Base64(System.Text.Encoding.UTF8.GetBytes(iv));
        if (ivBytes.Length != IvBytes)
            throw new BlockException(Errno.EINVAL, $"IV should be {IvBytes} bytes in length not {ivBytes.Length}");
        byte[] cipher = base64 ? Base64(input) : input;
        if (cipher.Length % IvBytes != 0 || cipher.Length == 0)
            throw new BlockException(Errno.EINVAL, $"Length {cipher.Length} must be a multiple of block size {IvBytes}");
        using var aes = Aes.Create();
        aes.Key = key;
        byte[] plain = aes.DecryptCbc(cipher, ivBytes, PaddingMode.None);
        // PKCS#7 padding, checked as QEMU checks it: only the last byte's value.
        int pad = plain[^1];
        if (pad > IvBytes || pad > plain.Length)
            throw new BlockException(Errno.EINVAL, $"Incorrect number of padding bytes ({pad}) found on decrypted data");
        return plain.AsSpan(0, plain.Length - pad).ToArray();
    }

    private static byte[] Base64(byte[] text)
    {
        try
        {
            return Convert.FromBase64String(System.Text.Encoding.UTF8.GetString(text));
        }
        catch (FormatException)
        {
            throw new BlockException(Errno.EINVAL, "Base64 data contains invalid characters");
        }
    }
}
