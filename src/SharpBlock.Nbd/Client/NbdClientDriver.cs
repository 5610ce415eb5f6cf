using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Schema;

namespace SharpBlock.Nbd.Client;

/// <summary>
/// Makes blockdev-add driver=nbd, and NBD URLs as image names, available. The core library cannot know this project, so whoever builds
/// a graph with NBD support (the QMP server, the CLI) registers it.
/// </summary>
public static class NbdClientDriver
{
    public static void Register(BlockDriverRegistry registry)
    {
        registry.Register(BlockdevDriver.Nbd, static async (ctx, ct) =>
        {
            var o = ctx.Options.Nbd ?? throw new BlockException(Errno.EINVAL, "Missing nbd options");
            var address = NbdServerAddress.FromSocketAddress(o.Server);
            return await NbdClientNode.OpenAsync(address, o.Export ?? "", ctx.Settings, ct).ConfigureAwait(false);
        });
        registry.RegisterFilenameProtocol(NbdFilename.Parse);
    }
}
