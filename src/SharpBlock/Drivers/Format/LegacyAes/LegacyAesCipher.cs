using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.Intrinsics;
using System.Security.Cryptography;

namespace SharpBlock.Drivers.Format.LegacyAes;

/// <summary>
/// The legacy encryption of qcow and qcow2 (crypt_method 1 in both headers): AES-128 in CBC mode over each 512-byte sector on its own, no
/// padding. The IV of a sector is its guest sector number (guest offset / 512) as a 64-bit little-endian
/// integer followed by eight zero bytes ("plain64"). The key is the password's bytes, cut at 16 and padded
/// with zeros; nothing in the image checks it, so a wrong password decrypts to garbage instead of failing.
/// </summary>
/// <remarks>
/// The scheme is weak (no integrity, predictable IVs, a password used directly as key) and exists only so
/// images made by old QEMU versions stay readable and writable. Because the IV depends on the guest offset,
/// data moves between guest offsets only as plaintext, and compressed clusters cannot be encrypted at all.
/// </remarks>
internal sealed class LegacyAesCipher
{
    /// <summary>crypt_method values in the header (qcow and qcow2 agree on them; qcow stops at 1).</summary>
    public const uint MethodNone = 0;
    public const uint MethodAes = 1;
    public const uint MethodLuks = 2;

    public const int SectorSize = 512;
    public const int SectorBits = 9;
    public const int KeySize = 16;
    private const int IvSize = 16;

    // From this many sectors on, encrypting them side by side beats one call per sector.
    private const int LaneThreshold = 8;

    private readonly byte[] _key;

    // The one-shot CBC calls build their cipher state per call, but the Aes object itself promises no
    // thread safety; each concurrent request borrows its own.
    private readonly ConcurrentQueue<Aes> _pool = new();

    public LegacyAesCipher(string password)
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
    public void Encrypt(long sector, Span<byte> data)
    {
        CheckWholeSectors(data);
        var aes = Rent();
        try
        {
            if (data.Length >= LaneThreshold * SectorSize)
                EncryptLanes(aes, sector, data);
            else
                EncryptEach(aes, sector, data);
        }
        finally
        {
            _pool.Enqueue(aes);
        }
    }

    /// <summary>One CBC call per sector: cheapest for a few sectors.</summary>
    private static void EncryptEach(Aes aes, long sector, Span<byte> data)
    {
        Span<byte> iv = stackalloc byte[IvSize];
        Span<byte> result = stackalloc byte[SectorSize];
        iv.Clear();
        for (int pos = 0; pos < data.Length; pos += SectorSize, sector++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(iv, sector);
            var s = data.Slice(pos, SectorSize);
            // Into a separate buffer: the one-shot API does not promise in-place operation.
            aes.EncryptCbc(s, iv, result, PaddingMode.None);
            result.CopyTo(s);
        }
    }

    /// <summary>
    /// CBC encryption is a chain within a sector but sectors are independent, and each native call costs far
    /// more than the AES work on one sector. So the sectors advance together: block j of every sector
    /// (already XORed with its sector's previous ciphertext block, or the IV) goes through one ECB call, 32
    /// calls for the whole buffer instead of one per sector.
    /// </summary>
    private static void EncryptLanes(Aes aes, long sector, Span<byte> data)
    {
        int sectors = data.Length / SectorSize;
        int laneBytes = sectors * IvSize;
        byte[] lane = ArrayPool<byte>.Shared.Rent(laneBytes * 2);
        try
        {
            var input = lane.AsSpan(0, laneBytes);
            var output = lane.AsSpan(laneBytes, laneBytes);
            Span<byte> iv = stackalloc byte[IvSize];
            iv.Clear();
            for (int j = 0; j < SectorSize; j += IvSize)
            {
                for (int s = 0; s < sectors; s++)
                {
                    var block = data.Slice((s * SectorSize) + j, IvSize);
                    if (j == 0)
                    {
                        BinaryPrimitives.WriteInt64LittleEndian(iv, sector + s);
                        Xor(block, iv, input.Slice(s * IvSize, IvSize));
                    }
                    else
                    {
                        Xor(block, data.Slice((s * SectorSize) + j - IvSize, IvSize), input.Slice(s * IvSize, IvSize));
                    }
                }

                aes.EncryptEcb(input, output, PaddingMode.None);
                for (int s = 0; s < sectors; s++)
                    output.Slice(s * IvSize, IvSize).CopyTo(data.Slice((s * SectorSize) + j, IvSize));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(lane);
        }
    }

    /// <summary>
    /// Decrypts whole sectors in place; the first is guest sector <paramref name="sector"/>. CBC decryption
    /// has no chain: each plaintext block is the block cipher's output XOR the previous ciphertext block (the
    /// IV for a sector's first), so the whole buffer goes through the cipher in one ECB call and the XOR
    /// follows, instead of one native call per sector.
    /// </summary>
    public void Decrypt(long sector, Span<byte> data)
    {
        CheckWholeSectors(data);
        var aes = Rent();
        byte[] plain = ArrayPool<byte>.Shared.Rent(data.Length);
        try
        {
            var d = plain.AsSpan(0, data.Length);
            aes.DecryptEcb(data, d, PaddingMode.None);
            Span<byte> iv = stackalloc byte[IvSize];
            iv.Clear();
            for (int pos = 0; pos < data.Length; pos += SectorSize, sector++)
            {
                var c = data.Slice(pos, SectorSize);
                var p = d.Slice(pos, SectorSize);
                // Back to front, so each block still sees the ciphertext of the one before it.
                for (int b = SectorSize - IvSize; b > 0; b -= IvSize)
                    Xor(p.Slice(b, IvSize), c.Slice(b - IvSize, IvSize), c.Slice(b, IvSize));
                BinaryPrimitives.WriteInt64LittleEndian(iv, sector);
                Xor(p[..IvSize], iv, c[..IvSize]);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(plain);
            _pool.Enqueue(aes);
        }
    }

    private static void Xor(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> into) =>
        (Vector128.Create(a) ^ Vector128.Create(b)).CopyTo(into);

    private static void CheckWholeSectors(ReadOnlySpan<byte> data)
    {
        if ((data.Length & (SectorSize - 1)) != 0)
            throw new ArgumentException("Encrypted I/O must cover whole sectors", nameof(data));
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
