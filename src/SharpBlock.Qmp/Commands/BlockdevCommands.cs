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
        // Block-layer failures (BlockException) become GenericError with their message in the session.
        server.Register(QmpCommandTable.BlockdevDel(static (a, ctx) => ctx.Server.Graph.DeleteAsync(a.NodeName, ctx.CancellationToken)));
    }
}
