using SharpBlock.Interop.Tests.Formats;

namespace SharpBlock.Interop.Tests.Qed;

/// <summary>The qed golden images: cluster and table sizes, empty, zero clusters, backing chains onto qed and raw.</summary>
public sealed class GoldenQedTests(Qcow2.GoldenImageTests.Images images)
    : GoldenManifestTests(images, "qed", "qed", ["default.qed", "small.qed", "big-tables.qed", "empty.qed", "chain-base.qed", "chain-top.qed", "raw-top.qed"]),
      IClassFixture<Qcow2.GoldenImageTests.Images>;
