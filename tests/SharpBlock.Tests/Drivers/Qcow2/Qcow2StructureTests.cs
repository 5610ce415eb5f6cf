using System.Buffers.Binary;
using SharpBlock.Drivers.Format.Qcow2;

namespace SharpBlock.Tests.Drivers.Qcow2;

public class Qcow2StructureTests
{
    [Fact]
    public void Constants_are_frozen()
    {
        Assert.Equal(0x514649FBu, Qcow2Layout.Magic);
        Assert.Equal(0xE2792ACAu, Qcow2Layout.ExtBackingFormat);
        Assert.Equal(0x6803f857u, Qcow2Layout.ExtFeatureNameTable);
        Assert.Equal(72, Qcow2Header.IncompatibleFeaturesOffset);
        Assert.Equal(96, Qcow2Header.RefcountOrderOffset);
        Assert.Equal(100, Qcow2Header.HeaderLengthOffset);
        Assert.Equal(104, Qcow2Header.CompressionTypeOffset);
        Assert.Equal(48, Qcow2Header.RefcountTableOffsetOffset);
        Assert.Equal(36, Qcow2Header.L1SizeOffset);
        Assert.Equal(40, Qcow2SnapshotHeader.Size);
        Assert.Equal(48, Qcow2FeatureName.Size);
    }

    [Theory]
    [InlineData(2u)]
    [InlineData(3u)]
    public void Header_round_trips(uint version)
    {
        var h = new Qcow2Header
        {
            Magic = Qcow2Layout.Magic,
            Version = version,
            BackingFileOffset = 0x1234,
            BackingFileSize = 17,
            ClusterBits = 16,
            Size64 = 1UL << 33,
            L1Size = 16,
            L1TableOffset = 0x30000,
            RefcountTableOffset = 0x10000,
            RefcountTableClusters = 1,
            NbSnapshots = 2,
            SnapshotsOffset = 0x50000,
            IncompatibleFeatures = version == 3 ? 1UL : 0,
            CompatibleFeatures = version == 3 ? 1UL : 0,
            AutoclearFeatures = version == 3 ? 2UL : 0,
            RefcountOrder = version == 3 ? 5u : 4u,
            HeaderLength = version == 3 ? 112u : 72u,
        };
        byte[] b = new byte[h.Size];
        h.Write(b);
        Assert.Equal(h, Qcow2Header.Read(b));
        Assert.Equal(Qcow2Layout.Magic, BinaryPrimitives.ReadUInt32BigEndian(b));
    }

    [Fact]
    public void Snapshot_header_round_trips()
    {
        var s = new Qcow2SnapshotHeader { L1TableOffset = 0x70000, L1Size = 3, IdSize = 1, NameSize = 5, DateSec = 77, DateNsec = 9, VmClockNsec = 123456789, VmStateSize = 0, ExtraDataSize = 24 };
        byte[] b = new byte[Qcow2SnapshotHeader.Size];
        s.Write(b);
        Assert.Equal(s, Qcow2SnapshotHeader.Read(b));
    }

    [Fact]
    public void Feature_names_round_trip()
    {
        byte[] b = new byte[Qcow2FeatureName.Size];
        var f = new Qcow2FeatureName(Qcow2FeatureName.Incompatible, 3, "compression type");
        f.Write(b);
        Assert.Equal(f, Qcow2FeatureName.Read(b));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public void Refcounts_of_every_width_round_trip_without_touching_neighbours(int order)
    {
        byte[] block = new byte[512];
        int entries = 512 * 8 >> order;
        ulong max = Qcow2Refcount.MaxValue(order);
        var rnd = new Random(order);
        var expect = new ulong[entries];
        for (int i = 0; i < entries; i++)
        {
            expect[i] = order == 6 ? (ulong)rnd.NextInt64() : (ulong)rnd.NextInt64((long)Math.Min(max, long.MaxValue - 1) + 1);
            Qcow2Refcount.Set(block, order, i, expect[i]);
        }

        for (int i = 0; i < entries; i++)
            Assert.Equal(expect[i], Qcow2Refcount.Get(block, order, i));
    }

    [Fact]
    public void Sub_byte_refcounts_pack_from_the_least_significant_bit()
    {
        byte[] block = new byte[2];
        Qcow2Refcount.Set(block, 0, 0, 1);
        Assert.Equal(0x01, block[0]);
        Qcow2Refcount.Set(block, 2, 1, 0xF);
        Assert.Equal(0xF1, block[0]);
        Qcow2Refcount.Set(block, 4, 0, 0x0102);
        Assert.Equal(new byte[] { 1, 2 }, block);
    }

    [Theory]
    [InlineData(9)]
    [InlineData(16)]
    [InlineData(21)]
    public void Compressed_descriptor_round_trips(int clusterBits)
    {
        long offset = (5L << clusterBits) + 777;
        int length = Math.Min(1000, (1 << clusterBits) - 100);
        var e = Qcow2L2Entry.MakeCompressed(offset, length, clusterBits);
        Assert.Equal(Qcow2ClusterKind.Compressed, e.Kind(true));
        Assert.Equal(offset, e.CompressedOffset(clusterBits));
        long first = offset & ~511L;
        Assert.True(first + (e.CompressedSectors(clusterBits) * 512L) >= offset + length);
        Assert.True(first + ((e.CompressedSectors(clusterBits) - 1) * 512L) < offset + length);
    }

    [Fact]
    public void L2_entry_kinds()
    {
        Assert.Equal(Qcow2ClusterKind.Unallocated, new Qcow2L2Entry(0).Kind(true));
        Assert.Equal(Qcow2ClusterKind.ZeroPlain, new Qcow2L2Entry(1).Kind(true));
        Assert.Equal(Qcow2ClusterKind.Unallocated, new Qcow2L2Entry(1).Kind(false));
        Assert.Equal(Qcow2ClusterKind.ZeroAllocated, new Qcow2L2Entry(0x10001).Kind(true));
        Assert.Equal(Qcow2ClusterKind.Normal, new Qcow2L2Entry(Qcow2Layout.OflagCopied | 0x10000).Kind(true));
    }
}
