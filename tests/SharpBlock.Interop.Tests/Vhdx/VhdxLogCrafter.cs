using System.Buffers.Binary;
using System.IO.Hashing;

namespace SharpBlock.Interop.Tests.Vhdx;

/// <summary>
/// Leaves a VHDX image as a crash between "log entry durable" and "BAT updated in place" would: a new payload
/// block at the end of the file, and one log entry (under a fresh log GUID named by the current header) that
/// points BAT entry 0 at it. Written from the spec's layout here, independently of the driver's writer.
/// </summary>
internal static class VhdxLogCrafter
{
    private const int Sector = 4096;

    private static uint Crc(ReadOnlySpan<byte> data, int checksumAt)
    {
        var c = new Crc32(Crc32ParameterSet.Crc32C);
        c.Append(data[..checksumAt]);
        c.Append([0, 0, 0, 0]);
        c.Append(data[(checksumAt + 4)..]);
        return c.GetCurrentHashAsUInt32();
    }

    /// <summary>Returns the fill byte of the new block that block 0 reads as once the log is replayed.</summary>
    public static byte LeaveReplayableLog(string path, byte fill = 0x5a)
    {
        byte[] d = File.ReadAllBytes(path);
        long block = (d.Length + (1 << 20) - 1) / (1 << 20) * (1 << 20);
        int blockSize = 1 << 20;
        var grown = new byte[block + blockSize];
        d.CopyTo(grown, 0);
        grown.AsSpan((int)block, blockSize).Fill(fill);
        d = grown;

        long bat = BinaryPrimitives.ReadInt64LittleEndian(d.AsSpan((192 * 1024) + 16 + 16));
        byte[] sector = d.AsSpan((int)bat, Sector).ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(sector, (ulong)block | 6);

        int h1 = 64 * 1024, h2 = 128 * 1024;
        ulong s1 = BinaryPrimitives.ReadUInt64LittleEndian(d.AsSpan(h1 + 8)), s2 = BinaryPrimitives.ReadUInt64LittleEndian(d.AsSpan(h2 + 8));
        int cur = s1 >= s2 ? h1 : h2, other = cur == h1 ? h2 : h1;
        var logGuid = Guid.NewGuid();
        byte[] header = d.AsSpan(cur, Sector).ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(8), Math.Max(s1, s2) + 1);
        logGuid.TryWriteBytes(header.AsSpan(48, 16));
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), Crc(header, 4));
        header.CopyTo(d, other);
        long log = BinaryPrimitives.ReadInt64LittleEndian(d.AsSpan(cur + 72));

        byte[] e = new byte[2 * Sector];
        "loge"u8.CopyTo(e);
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(8), (uint)e.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(16), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(24), 1);
        logGuid.TryWriteBytes(e.AsSpan(32, 16));
        BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(48), (ulong)d.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(56), (ulong)d.Length);
        "desc"u8.CopyTo(e.AsSpan(64));
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(68), BinaryPrimitives.ReadUInt32LittleEndian(sector.AsSpan(Sector - 4)));
        BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(72), BinaryPrimitives.ReadUInt64LittleEndian(sector));
        BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(80), (ulong)bat);
        BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(88), 1);
        "data"u8.CopyTo(e.AsSpan(Sector));
        sector.AsSpan(8, 4084).CopyTo(e.AsSpan(Sector + 8));
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(Sector + 4092), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(4), Crc(e, 4));
        e.CopyTo(d, log);
        File.WriteAllBytes(path, d);
        return fill;
    }
}
