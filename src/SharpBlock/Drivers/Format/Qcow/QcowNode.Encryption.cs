using SharpBlock.Drivers.Format.LegacyAes;
using SharpBlock.Errors;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow;

/// <summary>
/// Legacy AES (crypt_method 1), the scheme qcow2 inherited: plain data clusters are encrypted sector by
/// sector with the guest sector number as IV; tables, unwritten clusters and compressed clusters are not
/// (QEMU never wrote a compressed cluster into an encrypted image). The image opens without its key, so
/// info and map work; data I/O waits for it.
/// </summary>
public sealed partial class QcowNode
{
    private readonly LegacyAesKey _key = new();

    public override bool Encrypted => _header.CryptMethod == QcowLayout.CryptAes;

    public override bool EncryptionKeyMissing => Encrypted && _key.Missing;

    public override Task KeyProvided => Encrypted ? _key.Provided : Task.CompletedTask;

    public override void SetEncryptionKey(string password)
    {
        if (!Encrypted)
            base.SetEncryptionKey(password);
        else
            _key.Set(password);
    }

    /// <summary>Before a data request does any work (metadata-only work does not need the key).</summary>
    private void RequireKey() => LegacyAesKey.Require(this);

    private LegacyAesCipher Cipher => _key.Cipher ?? throw new EncryptionKeyRequiredException(this);

    private ValueTask ReadDataAsync(long host, long guest, Memory<byte> buffer, CancellationToken ct) =>
        Encrypted ? LegacyAesData.ReadAsync(_file, Cipher, host, guest, buffer, ct) : ReadFileAsync(host, buffer, ct);

    private ValueTask WriteDataAsync(long host, long guest, ReadOnlyMemory<byte> data, CancellationToken ct) =>
        Encrypted ? LegacyAesData.WriteAsync(_file, Cipher, host, guest, data, ct) : _file.WriteAsync(host, data, RequestFlags.None, ct);
}
