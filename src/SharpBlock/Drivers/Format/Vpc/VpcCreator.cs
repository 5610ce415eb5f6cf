using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Vpc;

/// <summary>The settings of a new VHD: fixed or dynamic, and whether the size is kept exactly (force_size).</summary>
public sealed record VpcCreateOptions(long Size, bool Fixed = false, bool ForceSize = false);

/// <summary>
/// Creates VHD images as QEMU 7.2 lays them out. Dynamic: footer copy at 0, the dynamic header at 512, the
/// BAT (all unused) at 1536, the footer after it. Fixed: the guest bytes (sparse) and the footer.
/// </summary>
public static class VpcCreator
{
    /// <summary>qemu-img's refusal of a size over 2040 GiB (counted in whole sectors).</summary>
    public static void Validate(VpcCreateOptions o)
    {
        if (o.Size < 0)
            throw new BlockException(Errno.EINVAL, "Image size must be non-negative");
        if ((o.Size + VpcLayout.SectorSize - 1) / VpcLayout.SectorSize > VpcLayout.MaxSectors)
            throw new BlockException(Errno.EFBIG, "The image size is too large for file format 'vpc'");
    }

    /// <summary>The footer of a new image, and its virtual size in bytes.</summary>
    internal static (byte[] Footer, long Size) NewFooter(VpcCreateOptions o)
    {
        long requested = (o.Size + VpcLayout.SectorSize - 1) / VpcLayout.SectorSize;
        long sectors;
        ushort c;
        byte h, s;
        if (o.ForceSize)
        {
            // The largest geometry tells readers (QEMU's "qem2" rule too) to trust current_size.
            (sectors, c, h, s) = (requested, 65535, 16, 255);
        }
        else
        {
            (sectors, c, h, s) = VpcGeometry.ForNewImage(requested);
        }

        long size = sectors * VpcLayout.SectorSize;
        byte[] footer = new byte[VpcFooter.Size];
        Guid.NewGuid().TryWriteBytes(footer.AsSpan(VpcFooter.UuidOffset, 16));
        new VpcFooter
        {
            Features = 2,
            Version = 0x00010000,
            DataOffset = o.Fixed ? ulong.MaxValue : VpcLayout.DynamicHeaderOffset,
            Timestamp = (uint)(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - VpcLayout.TimestampBase),
            CreatorApp = VpcFooter.Tag(o.ForceSize ? "qem2"u8 : "qemu"u8),
            // Virtual PC 2007's version, as QEMU writes.
            CreatorVersion = 0x00050003,
            CreatorOs = VpcFooter.Tag("Wi2k"u8),
            OriginalSize = (ulong)size,
            CurrentSize = (ulong)size,
            Cylinders = c,
            Heads = h,
            SectorsPerTrack = s,
            DiskType = o.Fixed ? VpcLayout.TypeFixed : VpcLayout.TypeDynamic,
        }.Write(footer);
        return (footer, size);
    }

    /// <summary>
    /// Writes a new image at <paramref name="path"/> through a plain file stream: the image tool holds the
    /// target's lock while a creator runs, so a creator must not open the file as a node of its own.
    /// </summary>
    public static async ValueTask CreateAsync(string path, VpcCreateOptions o, CancellationToken cancellationToken = default)
    {
        var (image, at) = Build(o);
        using var fs = ImageFiles.Create(path);
        fs.SetLength(at);
        fs.Position = at;
        await fs.WriteAsync(image, cancellationToken).ConfigureAwait(false);
        await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes a new image over an empty node (memory in tests, or any protocol node).</summary>
    public static async ValueTask CreateAsync(BlockNode file, VpcCreateOptions o, CancellationToken cancellationToken = default)
    {
        var (image, at) = Build(o);
        if (at > 0)
            await file.TruncateAsync(at, cancellationToken).ConfigureAwait(false);
        await file.WriteAsync(at, image, RequestFlags.None, cancellationToken).ConfigureAwait(false);
        await file.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The bytes of a new image and where they go: a fixed image is a hole of the guest's size and the footer
    /// after it; a dynamic one is footer copy, header, empty BAT and footer from byte 0.
    /// </summary>
    private static (byte[] Image, long At) Build(VpcCreateOptions o)
    {
        Validate(o);
        var (footer, size) = NewFooter(o);
        if (o.Fixed)
            return (footer, size);
        long blockSectors = VpcLayout.DefaultBlockSize / VpcLayout.SectorSize;
        uint entries = (uint)((size / VpcLayout.SectorSize + blockSectors - 1) / blockSectors);
        int batBytes = (int)(((long)entries * 4 + VpcLayout.SectorSize - 1) & ~(long)(VpcLayout.SectorSize - 1));
        byte[] image = new byte[VpcLayout.BatOffset + batBytes + VpcFooter.Size];
        footer.CopyTo(image, 0);
        new VpcDynamicHeader
        {
            // All 64 bits set: Microsoft's tools expect that, though the specification shows 32.
            DataOffset = ulong.MaxValue,
            TableOffset = VpcLayout.BatOffset,
            Version = 0x00010000,
            MaxTableEntries = entries,
            BlockSize = VpcLayout.DefaultBlockSize,
        }.Write(image.AsSpan((int)VpcLayout.DynamicHeaderOffset, VpcDynamicHeader.Size));
        image.AsSpan((int)VpcLayout.BatOffset, batBytes).Fill(0xff);
        footer.CopyTo(image, (int)VpcLayout.BatOffset + batBytes);
        return (image, 0);
    }
}
