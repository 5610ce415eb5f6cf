using SharpBlock.Drivers.Format.Dmg;

namespace SharpBlock.Fuzz.Targets;

/// <summary>
/// A whole dmg image in memory through the real open path (trailer, plist or resource fork, mish tables), then
/// what walks the chunks: reads of every chunk in reach (raw, zlib, bzip2 or zeros), block status and info.
/// </summary>
public static class DmgImageTarget
{
    public static Task RunAsync(byte[] image, FuzzContext context) =>
        ReadOnlyImageSteps.RunAsync(image, context, "fuzz.dmg", static (file, settings) => DmgNode.OpenAsync(file, settings));
}
