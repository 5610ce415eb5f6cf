using SharpBlock.Graph;
using SharpBlock.Io;

namespace SharpBlock.Nbd.Tests.Server;

/// <summary>
/// A format node over a file whose reads at offset 0 wait for a gate: lets a test hold one request while
/// others on the same connection complete, to see replies go out of order.
/// </summary>
internal sealed class GatedNode : BlockNode
{
    private readonly BlockNode _file;

    public GatedNode(BlockNode file, NodeSettings settings)
        : base(settings)
    {
        _file = file;
        AttachChild(file, ChildRole.File, "file");
    }

    public static TaskCompletionSource Gate { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public override string DriverName => "raw";

    public override long Length => _file.Length;

    protected override async ValueTask ReadCoreAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (offset == 0)
            await Gate.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        await _file.ReadAsync(offset, buffer, cancellationToken);
    }

    protected override ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags, CancellationToken cancellationToken) =>
        _file.WriteAsync(offset, data, flags, cancellationToken);

    protected override ValueTask FlushCoreAsync(CancellationToken cancellationToken) => _file.FlushAsync(cancellationToken);

    public static BlockDriverRegistry Registry()
    {
        var r = BlockDriverRegistry.CreateDefault();
        r.Register(Schema.BlockdevDriver.Raw, static async (ctx, ct) =>
        {
            var file = await ctx.OpenChildAsync(ctx.Options.Raw!.File, ct);
            return new GatedNode(file, ctx.Settings);
        });
        return r;
    }
}
