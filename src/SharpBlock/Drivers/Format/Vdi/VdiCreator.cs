using System.Globalization;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Vdi;

/// <summary>
/// Creates VDI images as QEMU lays them out: the header in sector 0, the block map from sector 1 (rounded up
/// to whole sectors), the data area after it. A static image maps block i to data block i and has its full
/// length (sparse); a dynamic one has an empty map and grows as blocks are written.
/// </summary>
public static class VdiCreator
{
    /// <summary>qemu-img's refusal, on the size rounded up to whole sectors as QEMU rounds it first.</summary>
    public static void Validate(long size)
    {
        if (size < 0)
            throw new BlockException(Errno.EINVAL, "Image size must be non-negative");
        ulong rounded = ((ulong)size + VdiLayout.SectorSize - 1) & ~(ulong)(VdiLayout.SectorSize - 1);
        if (rounded > VdiLayout.MaxDiskSize)
            throw new BlockException(Errno.EOPNOTSUPP, string.Create(CultureInfo.InvariantCulture, $"Unsupported VDI image size (size is 0x{rounded:x}, max supported is 0x{VdiLayout.MaxDiskSize:x})"));
    }

    /// <summary>
    /// Writes a new image at <paramref name="path"/> through a plain file stream: the image tool holds the
    /// target's lock while a creator runs, so a creator must not open the file as a node of its own.
    /// </summary>
    public static async ValueTask CreateAsync(string path, long size, bool isStatic, CancellationToken cancellationToken = default)
    {
        var (image, length) = Build(size, isStatic);
        using var fs = ImageFiles.Create(path);
        await fs.WriteAsync(image, cancellationToken).ConfigureAwait(false);
        fs.SetLength(length);
        await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes a new image over an empty node (memory in tests, or any protocol node).</summary>
    public static async ValueTask CreateAsync(BlockNode file, long size, bool isStatic, CancellationToken cancellationToken = default)
    {
        var (image, length) = Build(size, isStatic);
        await file.WriteAsync(0, image, RequestFlags.None, cancellationToken).ConfigureAwait(false);
        if (length > image.Length)
            await file.TruncateAsync(length, cancellationToken).ConfigureAwait(false);
        await file.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The header and block map of a new image, and the file's length (a static image's data area is a hole).</summary>
    private static (byte[] Image, long Length) Build(long size, bool isStatic)
    {
        Validate(size);
        ulong diskSize = ((ulong)size + VdiLayout.SectorSize - 1) & ~(ulong)(VdiLayout.SectorSize - 1);
        uint blocks = (uint)((diskSize + VdiLayout.BlockSize - 1) / VdiLayout.BlockSize);
        int bmapBytes = (int)(((long)blocks * 4 + VdiLayout.SectorSize - 1) & ~(long)(VdiLayout.SectorSize - 1));
        byte[] image = new byte[VdiHeader.Size + bmapBytes];
        System.Text.Encoding.ASCII.GetBytes(VdiLayout.Text, image);
        new VdiHeader
        {
            Signature = VdiLayout.Signature,
            Version = VdiLayout.Version11,
            HeaderSize = VdiLayout.HeaderSizeField,
            ImageType = isStatic ? VdiLayout.TypeStatic : VdiLayout.TypeDynamic,
            OffsetBmap = VdiHeader.Size,
            OffsetData = (uint)(VdiHeader.Size + bmapBytes),
            SectorSize = VdiLayout.SectorSize,
            DiskSize = diskSize,
            BlockSize = VdiLayout.BlockSize,
            BlocksInImage = blocks,
            BlocksAllocated = isStatic ? blocks : 0,
        }.Write(image);
        Guid.NewGuid().TryWriteBytes(image.AsSpan(VdiHeader.UuidImageOffset, VdiHeader.UuidLength));
        Guid.NewGuid().TryWriteBytes(image.AsSpan(VdiHeader.UuidLastSnapOffset, VdiHeader.UuidLength));
        var map = image.AsSpan(VdiHeader.Size);
        for (uint i = 0; i < blocks; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(map[(int)(i * 4)..], isStatic ? i : VdiLayout.Unallocated);
        return (image, isStatic ? image.Length + ((long)blocks * VdiLayout.BlockSize) : image.Length);
    }
}
