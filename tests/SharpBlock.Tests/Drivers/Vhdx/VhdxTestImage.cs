using SharpBlock.Drivers.Format.Vhdx;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Drivers.Vhdx;

/// <summary>Small vhdx images made by our creator over the memory node, and nodes opened over their bytes.</summary>
internal static class VhdxTestImage
{
    public static async Task<byte[]> CreateAsync(long size, long blockSize = 1 << 20, bool isFixed = false, bool zero = true, long logSize = 1 << 20)
    {
        var file = new MemoryNode([], NodeSettings.Default);
        await using (file)
        {
            await VhdxCreator.WriteAsync(file, VhdxCreateOptions.FromGiven(size, (ulong)logSize, (ulong)blockSize, isFixed, zero));
            return file.ToArray();
        }
    }

    public static MemoryNode File(byte[] image, bool readOnly = false) =>
        new(image, NodeSettings.Default with { ReadOnly = readOnly }, "test.vhdx");

    public static async Task<VhdxNode> OpenAsync(MemoryNode file, bool readOnly = false) =>
        await VhdxNode.OpenAsync(file, NodeSettings.Default with { ReadOnly = readOnly });
}
