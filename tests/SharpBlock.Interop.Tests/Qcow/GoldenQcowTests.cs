using SharpBlock.Interop.Tests.Formats;

namespace SharpBlock.Interop.Tests.Qcow;

/// <summary>The qcow golden images: default and backed layouts (qemu-img picks other cluster and L2 sizes for a backed image), empty, compressed, a chain.</summary>
public sealed class GoldenQcowTests(Qcow2.GoldenImageTests.Images images)
    : GoldenManifestTests(images, "qcow", "qcow", ["default.qcow", "empty.qcow", "compressed.qcow", "chain-base.qcow", "chain-top.qcow", "raw-top.qcow"]),
      IClassFixture<Qcow2.GoldenImageTests.Images>;
