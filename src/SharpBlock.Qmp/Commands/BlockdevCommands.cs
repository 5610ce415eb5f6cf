using System.Text.Json;
using SharpBlock.Graph;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>Adding and removing nodes.</summary>
internal static class BlockdevCommands
{
    public static void Register(QmpServer server)
    {
        // The seed's form wraps the options in 'options'; QEMU 2.9+ passes them directly. Both are
        // accepted: no BlockdevOptions member is called 'options', so the two never collide.
        server.Register(new QmpCommand("blockdev-add", static async (args, ctx) =>
        {
            var a = args ?? QapiRead.EmptyObject;
            BlockdevOptions options;
            if (a.TryGetProperty("options", out _))
            {
                var wrapped = QapiCodec.ReadBlockdevAddArgumentsMembers(a, "", false);
                QapiRead.CheckUnexpected(a, "", ["options"]);
                options = wrapped.Options;
                // QEMU 2.1's qmp_blockdev_add: the seed form always makes a device.
                if (options.Id == null)
                    throw new QmpException("Block device needs an ID");
                if (options.Aio == BlockdevAioOptions.Native && options.Cache?.Direct != true)
                    throw new QmpException("aio=native requires cache.direct=true");
            }
            else
            {
                options = QapiCodec.ReadBlockdevOptions(a, "", false);
                // Newer QEMU refuses the same combination, in the file driver's words.
                if (options.Aio == BlockdevAioOptions.Native && options.Cache?.Direct != true)
                    throw new QmpException("aio=native was specified, but it requires cache.direct=on, which was not specified.");
            }

            await ctx.Server.Graph.AddAsync(options, ctx.CancellationToken).ConfigureAwait(false);
            return null;
        }));
        server.Register(new QmpCommand("blockdev-reopen", static async (args, ctx) =>
        {
            var a = QapiCodec.ReadBlockdevReopenArguments(args ?? QapiRead.EmptyObject, "", false);
            var entries = (args ?? QapiRead.EmptyObject).GetProperty("options");
            await ReopenAsync(ctx.Server.Graph, a.Options, entries, ctx.CancellationToken).ConfigureAwait(false);
            return null;
        }));
        // Block-layer failures (BlockException) become GenericError with their message in the session.
        server.Register(QmpCommandTable.BlockdevDel(static (a, ctx) => ctx.Server.Graph.DeleteAsync(a.NodeName, ctx.CancellationToken)));
    }

    // What blockdev-reopen may say about a node here: the rest would need the node opened anew.
    private static readonly string[] Reopenable = ["driver", "node-name", "read-only", "detect-zeroes", "discard", "filename", "file"];

    /// <summary>
    /// blockdev-reopen (QEMU 7.2): every entry names a node and repeats its options, so an option left out
    /// goes back to its default (read-only false, detect-zeroes off, discard ignore). All entries are
    /// checked before any node changes; nodes going read-write are reopened children first.
    /// </summary>
    private static async ValueTask ReopenAsync(BlockGraph graph, IReadOnlyList<BlockdevOptions> options, JsonElement entries,
        CancellationToken ct)
    {
        var plan = new List<(BlockNode Node, BlockdevOptions Options)>();
        int index = 0;
        foreach (var e in entries.EnumerateArray())
        {
            var o = options[index++];
            string name = o.NodeName ?? throw new QmpException("node-name not specified");
            var node = graph.FindNode(name) ?? throw new QmpException($"Failed to find node with node-name='{name}'");
            if (o.Driver.ToWire() != node.DriverName)
                throw new QmpException("Cannot change the option 'driver'");
            foreach (var p in e.EnumerateObject())
            {
                if (Array.IndexOf(Reopenable, p.Name) < 0)
                    throw new QmpException($"Cannot change the option '{p.Name}'");
            }

            if (o.File is { } f && f.Filename != node.Filename)
                throw new QmpException("Cannot change the option 'filename'");
            if (FileChild(o) is { } child)
            {
                string childName = child.Reference ?? throw new QmpException("Cannot change the option 'file'");
                var named = graph.FindNode(childName) ?? throw new QmpException($"Cannot find device='' nor node-name='{childName}'");
                if (named != node.File)
                    throw new QmpException("Cannot change the option 'file'");
            }

            plan.Add((node, o));
        }

        // A node may become writable only over a file that is, or becomes in the same command, writable.
        foreach (var (node, o) in plan)
        {
            if (o.ReadOnly != true && node.File is { ReadOnly: true } file && !plan.Exists(x => x.Node == file && x.Options.ReadOnly != true))
                throw new QmpException("Block node is read-only");
        }

        // Children before parents on the way to read-write, parents first on the way to read-only.
        plan.Sort((x, y) => Depth(x.Node) - Depth(y.Node));
        foreach (var (node, o) in plan)
        {
            if (o.ReadOnly != true)
                await ReopenOneAsync(node, o, ct).ConfigureAwait(false);
        }

        for (int i = plan.Count - 1; i >= 0; i--)
        {
            if (plan[i].Options.ReadOnly == true)
                await ReopenOneAsync(plan[i].Node, plan[i].Options, ct).ConfigureAwait(false);
        }
    }

    private static ValueTask ReopenOneAsync(BlockNode node, BlockdevOptions o, CancellationToken ct) =>
        node.ReopenAloneAsync(o.ReadOnly ?? false, o.DetectZeroes ?? BlockdevDetectZeroesOptions.Off, o.Discard ?? BlockdevDiscardOptions.Ignore, ct);

    private static BlockdevRef? FileChild(BlockdevOptions o) => o.Branch is BlockdevOptionsGenericFormat g ? g.File : null;

    /// <summary>How many file links lie below the node (a file node is 0).</summary>
    private static int Depth(BlockNode node)
    {
        int d = 0;
        for (var n = node.File; n != null; n = n.File)
            d++;
        return d;
    }
}
