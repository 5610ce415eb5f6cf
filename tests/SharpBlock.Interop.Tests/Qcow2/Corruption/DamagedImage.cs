using System.Buffers.Binary;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qcow2.Corruption;

/// <summary>
/// A small qcow2 image made by qemu-img and written by qemu-io, with the locations of its structures read
/// from its own header, so a variant can patch one field by name. Guest cluster 0 holds 0x11 bytes and
/// guest offset 1 MiB holds 0x22 bytes: the data that must survive whatever the damage makes a writer do.
/// </summary>
public sealed class DamagedImage
{
    public const int ClusterSize = 65536;

    private DamagedImage(string path) => Path = path;

    public string Path { get; }

    public long L1Offset { get; private set; }
    public long RefTableOffset { get; private set; }
    public long RefBlockOffset { get; private set; }
    public long L2Offset { get; private set; }

    /// <summary>Host offsets of the two written guest clusters.</summary>
    public long Data0 { get; private set; }
    public long Data1M { get; private set; }

    public static async Task<DamagedImage> CreateAsync(string path, string options = "", bool snapshot = false)
    {
        string o = "cluster_size=65536" + (options.Length > 0 ? "," + options : "");
        (await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-o", o, path, "64M")).Ok();
        (await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 64k", "-c", "write -P 0x22 1M 64k", path)).Ok();
        if (snapshot)
            (await Tools.RunAsync("qemu-img", "snapshot", "-c", "s1", path)).Ok();
        var img = new DamagedImage(path);
        img.ReadLayout();
        return img;
    }

    private void ReadLayout()
    {
        byte[] f = File.ReadAllBytes(Path);
        L1Offset = (long)BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan(40));
        RefTableOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan(48));
        RefBlockOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan((int)RefTableOffset));
        L2Offset = (long)(BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan((int)L1Offset)) & 0x00FFFFFFFFFFFE00UL);
        Data0 = (long)(BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan((int)L2Offset)) & 0x00FFFFFFFFFFFE00UL);
        Data1M = (long)(BinaryPrimitives.ReadUInt64BigEndian(f.AsSpan((int)L2Offset + (16 * 8))) & 0x00FFFFFFFFFFFE00UL);
    }

    public void Poke64(long at, ulong value) => Poke(at, b => BinaryPrimitives.WriteUInt64BigEndian(b, value), 8);

    public void Poke32(long at, uint value) => Poke(at, b => BinaryPrimitives.WriteUInt32BigEndian(b, value), 4);

    public void Poke16(long at, ushort value) => Poke(at, b => BinaryPrimitives.WriteUInt16BigEndian(b, value), 2);

    public void PokeBytes(long at, byte[] bytes)
    {
        using var fs = new FileStream(Path, FileMode.Open, FileAccess.Write);
        fs.Position = at;
        fs.Write(bytes);
    }

    private void Poke(long at, Action<byte[]> fill, int size)
    {
        byte[] b = new byte[size];
        fill(b);
        PokeBytes(at, b);
    }

    /// <summary>Sets the refcount of the host cluster at offset (16-bit refcounts, the default).</summary>
    public void SetRefcount(long hostOffset, ushort value) => Poke16(RefBlockOffset + ((hostOffset / ClusterSize) * 2), value);

    public void Truncate(long length)
    {
        using var fs = new FileStream(Path, FileMode.Open, FileAccess.Write);
        fs.SetLength(length);
    }

    /// <summary>Whether the bytes at a host offset are still the pattern the guest wrote there.</summary>
    public bool HostBytesAre(long hostOffset, byte pattern)
    {
        using var fs = new FileStream(Path, FileMode.Open, FileAccess.Read);
        if (hostOffset + ClusterSize > fs.Length)
            return false;
        byte[] b = new byte[ClusterSize];
        fs.Position = hostOffset;
        fs.ReadExactly(b);
        return Array.TrueForAll(b, x => x == pattern);
    }
}
