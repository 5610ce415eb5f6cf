using System.Buffers;
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
    private Qcow2AesCipher? _cipher;
    private readonly TaskCompletionSource _keyProvided = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public override bool Encrypted => _header.CryptMethod == Qcow2AesCipher.MethodAes;

    public override bool EncryptionKeyMissing => Encrypted && Volatile.Read(ref _cipher) == null;

    public override Task KeyProvided => Encrypted ? _keyProvided.Task : Task.CompletedTask;

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

        Volatile.Write(ref _cipher, new Qcow2AesCipher(password));
        _keyProvided.TrySetResult();
    }

    /// <summary>Rejects crypt methods other than none and AES when the image opens.</summary>
    private static void CheckCryptMethod(string name, uint method)
    {
        if (method is Qcow2AesCipher.MethodNone or Qcow2AesCipher.MethodAes)
            return;
        string what = method == Qcow2AesCipher.MethodLuks ? "LUKS encryption (crypt_method 2)" : $"encryption method {method}";
        throw new ImageOpenException(Errno.EOPNOTSUPP, name, $"qcow2 {what} is not supported");
    }

    /// <summary>
    /// Data requests need the key of an encrypted image, and of an encrypted backing file they may read for
    /// copy-on-write: checked before any work, so a request held for the key has allocated nothing yet.
    /// Metadata-only work does not come here.
    /// </summary>
    private void RequireKey()
    {
        if (Encrypted && Volatile.Read(ref _cipher) == null)
            throw new EncryptionKeyRequiredException(this);
        if (Backing?.NodeNeedingKey() is { } locked)
            throw new EncryptionKeyRequiredException(locked);
    }

    private Qcow2AesCipher Cipher => Volatile.Read(ref _cipher) ?? throw new EncryptionKeyRequiredException(this);

    /// <summary>Reads guest data stored at <paramref name="host"/>: as is, or decrypted by its guest sectors.</summary>
    private ValueTask ReadDataAsync(long host, long guest, Memory<byte> buffer, CancellationToken ct) =>
        Encrypted ? ReadDecryptedAsync(Cipher, host, guest, buffer, ct) : _file.ReadAsync(host, buffer, ct);

    /// <summary>Writes guest data to <paramref name="host"/>: as is, or encrypted by its guest sectors.</summary>
    private ValueTask WriteDataAsync(long host, long guest, ReadOnlyMemory<byte> data, CancellationToken ct) =>
        Encrypted ? WriteEncryptedAsync(Cipher, host, guest, data, ct) : _file.WriteAsync(host, data, RequestFlags.None, ct);

    private async ValueTask ReadDecryptedAsync(Qcow2AesCipher cipher, long host, long guest, Memory<byte> buffer, CancellationToken ct)
    {
        int head = (int)(guest & (Qcow2AesCipher.SectorSize - 1));
        long end = guest + buffer.Length;
        int tail = (int)(-end & (Qcow2AesCipher.SectorSize - 1));
        if (head == 0 && tail == 0)
        {
            await _file.ReadAsync(host, buffer, ct).ConfigureAwait(false);
            cipher.Decrypt(guest >> Qcow2AesCipher.SectorBits, buffer.Span);
            return;
        }

        // A sector decrypts only whole; clusters are whole sectors, so the widened range stays in the cluster.
        int total = head + buffer.Length + tail;
        byte[] tmp = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            await _file.ReadAsync(host - head, tmp.AsMemory(0, total), ct).ConfigureAwait(false);
            cipher.Decrypt((guest - head) >> Qcow2AesCipher.SectorBits, tmp.AsSpan(0, total));
            tmp.AsSpan(head, buffer.Length).CopyTo(buffer.Span);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(tmp);
        }
    }

    /// <summary>
    /// Encrypts a copy of the data (the caller's buffer stays plaintext) and writes it. A write that starts or
    /// ends inside a sector merges with that sector's old content first; callers hold the cluster's range lock
    /// and own the cluster, so nothing else changes those sectors meanwhile.
    /// </summary>
    private async ValueTask WriteEncryptedAsync(Qcow2AesCipher cipher, long host, long guest, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        const int Sector = Qcow2AesCipher.SectorSize;
        int head = (int)(guest & (Sector - 1));
        long end = guest + data.Length;
        int tail = (int)(-end & (Sector - 1));
        int total = head + data.Length + tail;
        long firstSector = (guest - head) >> Qcow2AesCipher.SectorBits;
        byte[] tmp = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            var whole = tmp.AsMemory(0, total);
            if (head != 0)
            {
                await _file.ReadAsync(host - head, whole[..Sector], ct).ConfigureAwait(false);
                cipher.Decrypt(firstSector, whole.Span[..Sector]);
            }

            if (tail != 0 && (total > Sector || head == 0))
            {
                await _file.ReadAsync(host - head + total - Sector, whole[(total - Sector)..], ct).ConfigureAwait(false);
                cipher.Decrypt(firstSector + ((total - Sector) >> Qcow2AesCipher.SectorBits), whole.Span[(total - Sector)..]);
            }

            data.Span.CopyTo(whole.Span[head..]);
            cipher.Encrypt(firstSector, whole.Span);
            await _file.WriteAsync(host - head, whole, RequestFlags.None, ct).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(tmp);
        }
    }

    /// <summary>Compressed clusters are never encrypted, so an encrypted image cannot take any.</summary>
    private void RefuseCompressedIfEncrypted()
    {
        if (Encrypted)
            throw new BlockException(Errno.EOPNOTSUPP, "Compression and encryption not supported at the same time");
    }
}
