using System.Text;
using SharpBlock.Drivers;

namespace SharpBlock.Cli.Img;

/// <summary>`img snapshot [-l | -c NAME | -d NAME | -a NAME] [-f FMT] FILE`.</summary>
internal static class ImgSnapshot
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fcda", "lqhU", ["object"], ["force-share", "image-opts"]);
        if (a.Positional.Count != 1)
            throw ImgUsageException.Syntax("Expecting one image file name");
        string? create = a.Get("-c");
        string? delete = a.Get("-d");
        string? apply = a.Get("-a");
        bool list = a.Has("-l") || (create == null && delete == null && apply == null);
        string path = a.Positional[0];
        var (graph, node) = await ImgImage.OpenAsync(a, path, a.Get("-f"), readOnly: list).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            if (InternalSnapshotLookup.Of(node) is not { } q)
                return NoSnapshots(list, create, delete, apply!);
            if (list)
            {
                if (q.InternalSnapshots.Count > 0)
                {
                    var sb = new StringBuilder("Snapshot list:\n");
                    ImgInfo.AppendSnapshots(sb, q);
                    Console.Out.Write(sb.ToString());
                }

                return 0;
            }

            try
            {
                if (create != null)
                    await q.CreateInternalSnapshotAsync(create).ConfigureAwait(false);
                else if (delete != null)
                    await q.DeleteInternalSnapshotAsync(delete).ConfigureAwait(false);
                else if (apply != null)
                    await q.RevertToInternalSnapshotAsync(apply).ConfigureAwait(false);
            }
            catch (Errors.BlockException ex)
            {
                string verb = create != null ? "create" : delete != null ? "delete" : "apply";
                string what = create ?? delete ?? apply!;
                // qemu-img's words for a snapshot that is not there differ by command.
                string reason = ex.Errno != Errors.Errno.ENOENT || create != null ? ex.Message
                    : delete != null ? "snapshot not found"
                    : "Failed to load snapshot: No such file or directory";
                return ImgCommand.Fail($"Could not {verb} snapshot '{what}': {reason}");
            }
        }

        return 0;
    }

    /// <summary>A format without internal snapshots: an empty list, and each change refused in qemu-img's words.</summary>
    private static int NoSnapshots(bool list, string? create, string? delete, string apply)
    {
        if (list)
            return 0;
        if (create != null)
            return ImgCommand.Fail($"Could not create snapshot '{create}': -95 (Operation not supported)");
        if (delete != null)
            return ImgCommand.Fail($"Could not delete snapshot '{delete}': snapshot not found");
        return ImgCommand.Fail($"Could not apply snapshot '{apply}': Block driver does not support snapshots");
    }
}
