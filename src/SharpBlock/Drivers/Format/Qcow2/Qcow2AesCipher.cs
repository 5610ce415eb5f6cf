using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// qcow2's legacy encryption (crypt_method 1): AES-128 in CBC mode over each 512-byte sector on its own, no
/// padding. The IV of a sector is its guest sector number (guest offset / 512) as a 64-bit little-endian
/// integer followed by eight zero bytes ("plain64"). The key is the password's bytes, cut at 16 and padded
/// with zeros; nothing in the image checks it, so a wrong password decrypts to garbage instead of failing.
/// </summary>
/// <remarks>
/// The scheme is weak (no integrity, predictable IVs, a password used directly as key) and exists only so
/// images made by old QEMU versions stay readable and writable. Because the IV depends on the guest offset,
/// data moves between guest offsets only as plaintext, and compressed clusters cannot be encrypted at all.
/// </remarks>
internal sealed class Qcow2AesCipher
{
    /// <summary>crypt_method values in the header.</summary>
    public const uint MethodNone = 0;
    public const uint MethodAes = 1;
    public const uint MethodLuks = 2;

    public const int SectorSize = 512;
    public const int SectorBits = 9;
    public const int KeySize = 16;
    private const int IvSize = 16;

    private readonly byte[] _key;

    // The one-shot CBC calls build their cipher state per call, but the Aes object itself promises no
    // thread safety; each concurrent request borrows its own.
    private readonly ConcurrentQueue<Aes> _pool = new();

    public Qcow2AesCipher(string password)
    {
        _key = DeriveKey(password);
    }

    /// <summary>The password's UTF-8 bytes up to the first NUL (it is a C string to QEMU), at most 16, zero-padded.</summary>
    public static byte[] DeriveKey(string password)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(password);
        int n = Array.IndexOf(bytes, (byte)0);
        if (n < 0)
            n = bytes.Length;
        byte[] key = new byte[KeySize];
        bytes.AsSpan(0, Math.Min(n, KeySize)).CopyTo(key);
        return key;
    }

    /// <summary>Encrypts whole sectors in place; the first is guest sector <paramref name="sector"/>.</summary>
    public void Encrypt(long sector, Span<byte> data) => Transform(sector, data, encrypt: true);

    /// <summary>Decrypts whole sectors in place; the first is guest sector <paramref name="sector"/>.</summary>
    public void Decrypt(long sector, Span<byte> data) => Transform(sector, data, encrypt: false);

    private void Transform(long sector, Span<byte> data, bool encrypt)
    {
        if ((data.Length & (SectorSize - 1)) != 0)
            throw new ArgumentException("Encrypted I/O must cover whole sectors", nameof(data));
        var aes = Rent();
        try
        {
            Span<byte> iv = stackalloc byte[IvSize];
            Span<byte> result = stackalloc byte[SectorSize];
            iv.Clear();
            for (int pos = 0; pos < data.Length; pos += SectorSize, sector++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(iv, sector);
                var s = data.Slice(pos, SectorSize);
                // Into a separate buffer: the one-shot API does not promise in-place operation.
                if (encrypt)
                    aes.EncryptCbc(s, iv, result, PaddingMode.None);
                else
                    aes.DecryptCbc(s, iv, result, PaddingMode.None);
                result.CopyTo(s);
            }
        }
        finally
        {
            _pool.Enqueue(aes);
        }
    }

    private Aes Rent()
    {
        if (_pool.TryDequeue(out var aes))
            return aes;
        aes = Aes.Create();
        aes.Key = _key;
        return aes;
    }
}
