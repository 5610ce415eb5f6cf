using SharpBlock.Drivers.Format.Qcow2;
using SharpBlock.Drivers.Protocol.Memory;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Tests.Drivers.Qcow2;

/// <summary>
/// Image fleecing reads a qcow2 overlay whose backing node is a live disk: a guest write to that disk first
/// copies the old data into the overlay, then lands. A read of the overlay that found a cluster unallocated
/// and reached the disk only after the guest write must not return the new bytes: the point-in-time image
/// would change under the reader (seen as a rare mismatch in FleecingTests).
/// </summary>
public class Qcow2FleecingReadTests
{
    private const int Cluster = 65536;

    /// <summary>A disk whose next read lets a whole copy-before-write and guest write happen first.</summary>
    private sealed class RacingDisk(byte[] data) : BlockNode(NodeSettings.Default)
    {
        public Func<Task>? BeforeNextRead { get; set; }

        public byte[] Data { get; } = data;

        public override string DriverName => "memory";

        public override string Filename => "disk";

        public override long Length => Data.Length;

        protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            if (BeforeNextRead is { } hook)
            {
                BeforeNextRead = null;
                await hook();
            }

            Data.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
        }

        protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken)
        {
            data.Span.CopyTo(Data.AsSpan((int)offset));
            return ValueTask.CompletedTask;
        }

        protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_read_that_reaches_the_backing_disk_after_a_guest_write_returns_the_copied_old_data()
    {
        using var dir = new SharpBlock.Testing.TempDir();
        string p = await Qcow2TestImage.CreateAsync(dir.File("fleece.qcow2"), 1 << 20);
        var disk = new RacingDisk(Enumerable.Repeat((byte)0xAA, 1 << 20).ToArray());
        await using var overlay = await Qcow2Node.OpenAsync(new MemoryNode(await File.ReadAllBytesAsync(p), NodeSettings.Default), NodeSettings.Default);
        overlay.AttachBacking(disk);

        // While the overlay's read is on its way to the disk: the old cluster is copied into the overlay
        // (as the backup job's copy before write does), then the guest's write lands on the disk.
        disk.BeforeNextRead = async () =>
        {
            await overlay.WriteAsync(Cluster, Enumerable.Repeat((byte)0xAA, Cluster).ToArray());
            await disk.WriteAsync(Cluster, Enumerable.Repeat((byte)0xBB, Cluster).ToArray());
        };

        var got = new byte[Cluster];
        await overlay.ReadAsync(Cluster, got);
        Assert.True(got.All(b => b == 0xAA), $"the point-in-time read returned the guest's new data (first byte {got[0]:x2})");
        Assert.Equal(0xBB, disk.Data[Cluster]);
    }
}
