using System.Text;
using SharpBlock.Drivers.Format.Vmdk;
using SharpBlock.Errors;

namespace SharpBlock.Tests.Drivers.Vmdk;

/// <summary>The on-disk constants frozen, the header and marker round trips, descriptor parsing and probing.</summary>
public class VmdkStructureTests
{
    [Fact]
    public void Layout_constants_keep_their_values()
    {
        Assert.Equal("KDMV"u8.ToArray(), BitConverter.GetBytes(VmdkLayout.Magic));
        Assert.Equal("COWD"u8.ToArray(), BitConverter.GetBytes(VmdkLayout.Vmdk3Magic));
        Assert.Equal(1u, VmdkLayout.FlagNewlineDetect);
        Assert.Equal(2u, VmdkLayout.FlagRedundantGrainTable);
        Assert.Equal(4u, VmdkLayout.FlagZeroGrain);
        Assert.Equal(0x10000u, VmdkLayout.FlagCompressed);
        Assert.Equal(0x20000u, VmdkLayout.FlagMarkers);
        Assert.Equal("\n \r\n"u8.ToArray(), BitConverter.GetBytes(VmdkLayout.CheckBytes));
        Assert.Equal(512u, VmdkLayout.MaxGtesPerGt);
        Assert.Equal(0x200000ul, VmdkLayout.MaxGrainSectors);
        Assert.Equal(32L << 20, VmdkLayout.MaxGdEntries);
        Assert.Equal(4194304L, VmdkLayout.SplitExtentSectors);
        (int, int)[] offsets =
        [
            (4, VmdkSparseHeader.VersionOffset), (8, VmdkSparseHeader.FlagsOffset), (12, VmdkSparseHeader.CapacityOffset),
            (20, VmdkSparseHeader.GranularityOffset), (28, VmdkSparseHeader.DescOffsetOffset), (36, VmdkSparseHeader.DescSizeOffset),
            (44, VmdkSparseHeader.GtesPerGtOffset), (48, VmdkSparseHeader.RgdOffsetOffset), (56, VmdkSparseHeader.GdOffsetOffset),
            (64, VmdkSparseHeader.GrainOffsetOffset), (73, VmdkSparseHeader.CheckBytesOffset), (77, VmdkSparseHeader.CompressAlgorithmOffset),
        ];
        foreach (var (want, got) in offsets)
            Assert.Equal(want, got);
    }

    [Fact]
    public void Header_and_markers_round_trip()
    {
        var h = new VmdkSparseHeader
        {
            Magic = VmdkLayout.Magic,
            Version = 3,
            Flags = 0x30003,
            Capacity = 123456,
            Granularity = 128,
            DescOffset = 1,
            DescSize = 20,
            GtesPerGt = 512,
            RgdOffset = 21,
            GdOffset = 26,
            GrainOffset = 128,
            CheckBytes = VmdkLayout.CheckBytes,
            CompressAlgorithm = 1,
        };
        byte[] b = new byte[512];
        h.Write(b);
        Assert.Equal(h, VmdkSparseHeader.Read(b));
        Assert.True(h.Compressed && h.HasMarkers && h.HasRedundantTables && !h.HasZeroGrains);
        var m = new VmdkMarker(7, 0, VmdkLayout.MarkerGrainDirectory);
        m.WriteMetadata(b);
        Assert.Equal(m, VmdkMarker.Read(b));
    }

    private static VmdkDescriptor Desc(string s) => VmdkDescriptor.Parse(Encoding.ASCII.GetBytes(s + "\0\0garbage after the NUL"));

    [Fact]
    public void Descriptor_values_are_found_as_qemu_finds_them()
    {
        var d = Desc("# Disk DescriptorFile\nversion=1\nCID=9d93e6a\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentFlat\"\nparentFileNameHint=\"base.vmdk\"\n"
            + "RW 4194304 FLAT \"a-f001.vmdk\" 0\nRDONLY 2048 FLAT \"ro.vmdk\" 0\nNOACCESS 2048 FLAT \"na.vmdk\" 0\nRW 1024 ZERO\n"
            + "RW 2048 VMFS \"v.vmdk\"\nRW 100 SPARSE \"s.vmdk\"\nRW 0 FLAT \"empty\" 0\nddb.adapterType = \"lsilogic\"\n");
        Assert.Equal(0x9d93e6au, d.Cid);
        Assert.Equal(0xffffffffu, d.ParentCid);
        Assert.Equal("twoGbMaxExtentFlat", d.CreateType);
        Assert.Equal("base.vmdk", d.ParentFileNameHint);
        Assert.Equal("lsilogic", d.Ddb("adapterType"));
        var e = d.Extents();
        // RDONLY, NOACCESS, ZERO and empty lines are passed over, as QEMU 7.2 does.
        Assert.Equal(["a-f001.vmdk", "v.vmdk", "s.vmdk"], e.Select(x => x.FileName));
        Assert.Equal(new VmdkExtentLine("RW", 4194304, "FLAT", "a-f001.vmdk", 0), e[0]);
        Assert.Equal(0, e[1].Offset);
        Assert.DoesNotContain("garbage", d.Text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("RW 2048 FLAT \"f.vmdk\"")]
    [InlineData("RW 2048 VMFS \"f.vmdk\" 5")]
    [InlineData("RW 2048 SPARSE \"f.vmdk\" 5")]
    [InlineData("RW 2048 FLAT \"f.vmdk\" -1")]
    public void Malformed_extent_lines_are_refused(string line)
    {
        var ex = Assert.Throws<BlockException>(() => Desc("createType=\"monolithicFlat\"\n" + line + "\n").Extents());
        Assert.Equal("Invalid extent line: " + line, ex.Message);
    }

    [Fact]
    public void Cid_and_parent_lines_are_rewritten_in_place()
    {
        var d = Desc("# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n\n# Extent description\nRW 8 SPARSE \"a.vmdk\"\n");
        d.SetCid(0xdeadbeef);
        d.SetParentCid(0x12);
        d.SetParentFileNameHint("p.vmdk");
        Assert.Equal("# Disk DescriptorFile\nversion=1\nCID=deadbeef\nparentCID=12\ncreateType=\"monolithicSparse\"\nparentFileNameHint=\"p.vmdk\"\n\n# Extent description\nRW 8 SPARSE \"a.vmdk\"\n", d.Text);
        d.SetParentFileNameHint(null);
        Assert.Null(d.ParentFileNameHint);
        Assert.Single(d.Extents());
    }

    [Theory]
    [InlineData("KDMV\u0001\0\0\0", 100)]
    [InlineData("COWD\u0001\0\0\0", 100)]
    [InlineData("version=1\nCID=1\n", 100)]
    [InlineData("# Disk DescriptorFile\nversion=2\r\n", 100)]
    [InlineData("# a\n   \n  \r\nversion=3\n", 100)]
    [InlineData("version=4\n", 0)]
    [InlineData("   x\nversion=1\n", 0)]
    [InlineData("QFI\u00fb", 0)]
    [InlineData("ab", 0)]
    public void Probe_scores_as_qemu(string head, int score) =>
        Assert.Equal(score, new VmdkFormat().Probe(Encoding.Latin1.GetBytes(head), "x"));
}
