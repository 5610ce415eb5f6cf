using SharpBlock.Interop.Tests.Formats;

namespace SharpBlock.Interop.Tests.Parallels;

/// <summary>The parallels golden images: default (1 MiB) and small clusters, empty, zero writes, the last sector.</summary>
public sealed class GoldenParallelsTests(Qcow2.GoldenImageTests.Images images)
    : GoldenManifestTests(images, "parallels", "parallels", ["default.parallels", "small.parallels", "empty.parallels", "odd-size.parallels"]),
      IClassFixture<Qcow2.GoldenImageTests.Images>;
