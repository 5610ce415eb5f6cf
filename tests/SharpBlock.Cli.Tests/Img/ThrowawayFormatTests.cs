using System.Buffers.Binary;
using System.Text.Json;
using SharpBlock.Cli.Img;
using SharpBlock.Drivers;
using SharpBlock.Drivers.Creation;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Io;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Cli.Tests.Img;

/// <summary>
/// A format added through the format contract alone, in a few dozen lines here, with nothing changed under
/// src/SharpBlock.Cli or src/SharpBlock.Qmp: the image tool creates, probes, opens, converts to and from it
/// and shows its info. Every generic-format driver name of the seed schema now has a real driver, so it
/// borrows 'cloop' (a read-only format that cannot create images): its registration replaces the real cloop
/// driver in this test process only, which is what a plug-in overriding a built-in format does.
/// </summary>
public class ThrowawayFormatTests
{
    /// <summary>"SBTINY" + two NULs, the virtual size, an optional label (-o label=TEXT), then the data from byte 512 on.</summary>
    private sealed class TinyFormat : BlockFormat
    {
        public static readonly byte[] Magic = "SBTINY\0\0"u8.ToArray();

        public override BlockdevDriver Driver => BlockdevDriver.Cloop;

        public override int Probe(ReadOnlySpan<byte> head, string fileName) => head.StartsWith(Magic) ? 100 : 0;

        public override async ValueTask<BlockNode> OpenAsync(BlockOpenContext context, CancellationToken cancellationToken)
        {
            var file = await context.OpenChildAsync(context.Options.Cloop!.File, cancellationToken);
            byte[] head = new byte[16];
            await file.ReadAsync(0, head, cancellationToken);
            if (!head.AsSpan(0, 8).SequenceEqual(Magic))
                throw new ImageCorruptException(file.Filename, "magic", 0, "not a tiny image");
            return new TinyNode(file, context.Settings, BinaryPrimitives.ReadInt64BigEndian(head.AsSpan(8)));
        }

        public override BlockdevOptions OptionsOver(BlockdevRef file) =>
            new() { Driver = BlockdevDriver.Cloop, Cloop = new BlockdevOptionsGenericFormat { File = file } };

        public override ValueTask CreateAsync(string path, long size, string? backingFile, string? backingFormat, CancellationToken cancellationToken) =>
            WriteAsync(path, size, "", cancellationToken);

        public override IReadOnlyList<ImageOption> CreateOptions { get; } =
            [.. ImageCreateBasic.Options, new ImageOption("label", ImageOptionType.String, "Text kept in the header")];

        public override ImageCreation PlanCreate(ImageOptionValues options) =>
            new TinyCreation { Size = ImageSizes.Required(ImageCreateBasic.Read(options).Size), Label = options.Str("label") ?? "" };

        public static async ValueTask WriteAsync(string path, long size, string label, CancellationToken cancellationToken)
        {
            byte[] head = new byte[512];
            Magic.CopyTo(head, 0);
            BinaryPrimitives.WriteInt64BigEndian(head.AsSpan(8), size);
            System.Text.Encoding.UTF8.GetBytes(label, head.AsSpan(16));
            await File.WriteAllBytesAsync(path, head, cancellationToken);
        }
    }

    private sealed class TinyCreation : ImageCreation
    {
        public required string Label { get; init; }

        public override string Describe(string fileName) => $"Formatting '{fileName}', fmt=cloop size={Size} label={Label}";

        public override ValueTask CreateAsync(string path, CancellationToken cancellationToken) => TinyFormat.WriteAsync(path, Size, Label, cancellationToken);
    }

    private sealed class TinyNode : BlockNode
    {
        private const int DataStart = 512;
        private readonly BlockNode _file;
        private readonly long _size;

        public TinyNode(BlockNode file, NodeSettings settings, long size)
            : base(settings)
        {
            _file = file;
            _size = size;
            AttachChild(file, ChildRole.File, "file");
        }

        public override string DriverName => "cloop";

        public override long Length => _size;

        protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            // Past the end of the file the image reads zeros, as a sparse format would.
            long have = Math.Clamp(_file.Length - DataStart - offset, 0, buffer.Length);
            if (have > 0)
                await _file.ReadAsync(DataStart + offset, buffer[..(int)have], cancellationToken);
            buffer.Span[(int)have..].Clear();
        }

        protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken) =>
            _file.WriteAsync(DataStart + offset, data, flags, cancellationToken);

        protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => _file.FlushAsync(cancellationToken);
    }

    private static readonly SemaphoreSlim ConsoleLock = new(1, 1);

    /// <summary>Runs `img ARGS` in this process (where the format is registered) and returns its exit code and output.</summary>
    private static async Task<(int Code, string Out)> ImgAsync(params string[] args)
    {
        await ConsoleLock.WaitAsync();
        var saved = Console.Out;
        var sw = new StringWriter();
        try
        {
            Console.SetOut(sw);
            int code = await ImgCommand.RunAsync(args);
            return (code, sw.ToString());
        }
        finally
        {
            Console.SetOut(saved);
            ConsoleLock.Release();
        }
    }

    [Fact]
    public async Task A_format_registered_through_the_contract_works_in_every_img_path()
    {
        BlockDriverRegistry.Default.RegisterFormat(new TinyFormat());
        using var dir = new TempDir();
        string tiny = dir.File("disk.tiny");
        string source = dir.PatternFile("source.raw", 1 << 20, seed: 7);

        var create = await ImgAsync("create", "-f", "cloop", "-o", "label=hello", tiny, "1M");
        Assert.Equal(0, create.Code);
        Assert.Contains($"Formatting '{tiny}', fmt=cloop size=1048576 label=hello", create.Out, StringComparison.Ordinal);
        Assert.Equal(TinyFormat.Magic, File.ReadAllBytes(tiny)[..8]);
        Assert.Equal("hello"u8.ToArray(), File.ReadAllBytes(tiny)[16..21]);

        // Its -o options come from its own table: listed by -o help, anything else refused before a file is made.
        var help = await ImgAsync("create", "-f", "cloop", "-o", "help");
        Assert.Equal(0, help.Code);
        Assert.Contains("Supported cloop options:", help.Out, StringComparison.Ordinal);
        Assert.Matches(@"\n  label=<str> +- Text kept in the header\n", help.Out);
        Assert.Contains("  size=<size>", help.Out, StringComparison.Ordinal);
        Assert.Equal(1, (await ImgAsync("create", "-f", "cloop", "-o", "cluster_size=4k", dir.File("no.tiny"), "1M")).Code);
        Assert.Equal(1, (await ImgAsync("create", "-f", "cloop", "-b", tiny, "-F", "cloop", dir.File("no.tiny"), "1M")).Code);
        Assert.False(File.Exists(dir.File("no.tiny")));

        // Probed, not named: the magic alone must pick the format.
        var info = await ImgAsync("info", "--output=json", tiny);
        Assert.Equal(0, info.Code);
        using (var doc = JsonDocument.Parse(info.Out))
        {
            Assert.Equal("cloop", doc.RootElement.GetProperty("format").GetString());
            Assert.Equal(1 << 20, doc.RootElement.GetProperty("virtual-size").GetInt64());
        }

        Assert.Equal(0, (await ImgAsync("convert", "-n", "-f", "raw", "-O", "cloop", source, tiny)).Code);
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(tiny)[512..]);

        string back = dir.File("back.raw");
        Assert.Equal(0, (await ImgAsync("convert", "-O", "raw", tiny, back)).Code);
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(back));

        string fresh = dir.File("fresh.tiny");
        Assert.Equal(0, (await ImgAsync("convert", "-f", "raw", "-O", "cloop", source, fresh)).Code);
        Assert.Equal(0, (await ImgAsync("compare", source, fresh)).Code);

        // What the format does not offer is refused by the tool in qemu-img's words, not by a type test.
        var check = await ImgAsync("check", tiny);
        Assert.Equal(63, check.Code);
        // No internal snapshots: an empty list, as qemu-img prints for such formats, and creation refused.
        Assert.Equal(0, (await ImgAsync("snapshot", "-l", tiny)).Code);
        Assert.Equal(1, (await ImgAsync("snapshot", "-c", "s1", tiny)).Code);
        Assert.Equal(1, (await ImgAsync("amend", "-o", "size=2M", tiny)).Code);
        Assert.Equal(1, (await ImgAsync("measure", "-O", "cloop", "--size", "1M")).Code);
        Assert.Equal(1, (await ImgAsync("convert", "-c", "-O", "cloop", source, dir.File("no.tiny"))).Code);
        Assert.False(File.Exists(dir.File("no.tiny")));
    }
}
