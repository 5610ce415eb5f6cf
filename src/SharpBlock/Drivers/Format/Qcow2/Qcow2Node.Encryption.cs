using SharpBlock.Drivers.Format.LegacyAes;
using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Legacy AES encryption (crypt_method 1). Only data clusters are encrypted; metadata, zero clusters and
/// unallocated ranges are not, so everything but data I/O works without the key. Data goes through
/// <see cref="ReadDataAsync"/> and <see cref="WriteDataAsync"/>, which are plain file I/O for other images.
/// </summary>
public sealed partial class Qcow2Node
{
    private readonly LegacyAesKey _key = new();

    public override bool Encrypted => _header.CryptMethod == LegacyAesCipher.MethodAes;

    public override bool EncryptionKeyMissing => Encrypted && _key.Missing;

    public override Task KeyProvided => Encrypted ? _key.Provided : Task.CompletedTask;

    /// <summary>
    /// Sets the password (any password is taken: the format cannot tell a wrong one). Requests already
    /// running finish with the key they started with.
    /// </summary>
    public override void SetEncryptionKey(string password)
    {
        if (!Encrypted)
        {
            base.SetEncryptionKey(password);
            return;
        }

        _key.Set(password);
    }

    /// <summary>Rejects crypt methods other than none and AES when the image opens.</summary>
    private static void CheckCryptMethod(string name, uint method)
    {
        if (method is LegacyAesCipher.MethodNone or LegacyAesCipher.MethodAes)
            return;
        string what = method == LegacyAesCipher.MethodLuks ? "LUKS encryption (crypt_method 2)" : $"encryption method {method}";
        throw new ImageOpenException(Errno.EOPNOTSUPP, name, $"qcow2 {what} is not supported");
    }

    /// <summary>Before a data request does any work (metadata-only work does not need the key).</summary>
    private void RequireKey() => LegacyAesKey.Require(this);

    private LegacyAesCipher Cipher => _key.Cipher ?? throw new EncryptionKeyRequiredException(this);

    /// <summary>Reads guest data stored at <paramref name="host"/>: as is, or decrypted by its guest sectors.</summary>
    private ValueTask ReadDataAsync(long host, long guest, Memory<byte> buffer, CancellationToken ct) =>
        Encrypted ? LegacyAesData.ReadAsync(_file, Cipher, host, guest, buffer, ct) : _file.ReadAsync(host, buffer, ct);

    /// <summary>Writes guest data to <paramref name="host"/>: as is, or encrypted by its guest sectors.</summary>
    private ValueTask WriteDataAsync(long host, long guest, ReadOnlyMemory<byte> data, CancellationToken ct) =>
        Encrypted ? LegacyAesData.WriteAsync(_file, Cipher, host, guest, data, ct) : _file.WriteAsync(host, data, RequestFlags.None, ct);

    /// <summary>Compressed clusters are never encrypted, so an encrypted image cannot take any.</summary>
    private void RefuseCompressedIfEncrypted()
    {
        if (Encrypted)
            throw new BlockException(Errno.EOPNOTSUPP, "Compression and encryption not supported at the same time");
    }
}
