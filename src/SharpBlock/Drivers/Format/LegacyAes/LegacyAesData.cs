using System.Buffers;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.LegacyAes;

/// <summary>
/// Guest data of a legacy AES image stored in its file: sectors are encrypted by their guest sector number,
/// so a request that starts or ends inside a sector widens to the whole sector. Clusters are whole sectors,
/// so the widened range never leaves the cluster the caller mapped.
/// </summary>
internal static class LegacyAesData
{
    private const int Sector = LegacyAesCipher.SectorSize;

    /// <summary>Reads guest bytes at <paramref name="guest"/> stored at file offset <paramref name="host"/>, decrypted.</summary>
    public static async ValueTask ReadAsync(BlockNode file, LegacyAesCipher cipher, long host, long guest, Memory<byte> buffer, CancellationToken ct)
    {
        int head = (int)(guest & (Sector - 1));
        long end = guest + buffer.Length;
        int tail = (int)(-end & (Sector - 1));
        if (head == 0 && tail == 0)
        {
            await file.ReadAsync(host, buffer, ct).ConfigureAwait(false);
            cipher.Decrypt(guest >> LegacyAesCipher.SectorBits, buffer.Span);
            return;
        }

        int total = head + buffer.Length + tail;
        byte[] tmp = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            await file.ReadAsync(host - head, tmp.AsMemory(0, total), ct).ConfigureAwait(false);
            cipher.Decrypt((guest - head) >> LegacyAesCipher.SectorBits, tmp.AsSpan(0, total));
            tmp.AsSpan(head, buffer.Length).CopyTo(buffer.Span);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(tmp);
        }
    }

    /// <summary>
    /// Encrypts a copy of the data (the caller's buffer stays plaintext) and writes it. A write that starts or
    /// ends inside a sector merges with that sector's old content first; callers own the cluster (its range
    /// lock, or the format's lock), so nothing else changes those sectors meanwhile.
    /// </summary>
    public static async ValueTask WriteAsync(BlockNode file, LegacyAesCipher cipher, long host, long guest, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        int head = (int)(guest & (Sector - 1));
        long end = guest + data.Length;
        int tail = (int)(-end & (Sector - 1));
        int total = head + data.Length + tail;
        long firstSector = (guest - head) >> LegacyAesCipher.SectorBits;
        byte[] tmp = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            var whole = tmp.AsMemory(0, total);
            if (head != 0)
            {
                await file.ReadAsync(host - head, whole[..Sector], ct).ConfigureAwait(false);
                cipher.Decrypt(firstSector, whole.Span[..Sector]);
            }

            if (tail != 0 && (total > Sector || head == 0))
            {
                await file.ReadAsync(host - head + total - Sector, whole[(total - Sector)..], ct).ConfigureAwait(false);
                cipher.Decrypt(firstSector + ((total - Sector) >> LegacyAesCipher.SectorBits), whole.Span[(total - Sector)..]);
            }

            data.Span.CopyTo(whole.Span[head..]);
            cipher.Encrypt(firstSector, whole.Span);
            await file.WriteAsync(host - head, whole, RequestFlags.None, ct).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(tmp);
        }
    }
}
