using System.Globalization;
using System.Text;
using SharpBlock.Drivers;
using SharpBlock.Graph;
using SharpBlock.Qmp.Schema;
using SharpBlock.Schema;

namespace SharpBlock.Cli.Img;

/// <summary>`img info [-f FMT] [--output=human|json] [--backing-chain] FILE`.</summary>
internal static class ImgInfo
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "f", "hU", ["output", "object"], ["backing-chain", "force-share", "image-opts"]);
        if (a.Positional.Count != 1)
            throw ImgUsageException.Syntax("Expecting one image file name");
        bool json = a.Json();
        bool chain = a.Has("--backing-chain");
        // Each image is opened on its own without its backing file, and a chain is followed by name, as
        // qemu-img does: the top is described even when its backing file is gone, and a broken link is
        // reported as the name that failed.
        var (graph, node) = await ImgImage.OpenAsync(a, a.Positional[0], a.Get("-f"), readOnly: true, requireKey: false, noBacking: true).ConfigureAwait(false);
        var graphs = new List<BlockGraph> { graph };
        try
        {
            var infos = new List<(ImageInfo Info, BlockNode Node)>();
            var seen = new HashSet<string>(StringComparer.Ordinal) { node.Filename };
            for (var n = node; ;)
            {
                var info = await n.GetImageInfoAsync().ConfigureAwait(false);
                info.BackingImage = null;
                infos.Add((info, n));
                if (!chain || info.FullBackingFilename is not { } next)
                    break;
                if (!seen.Add(next))
                    throw new ImgUsageException($"Backing file '{next}' creates an infinite loop.");
                (var g, n) = await ImgImage.OpenAsync(next, info.BackingFilenameFormat, readOnly: true, forceShare: a.Has("-U") || a.Has("--force-share"),
                    noBacking: true).ConfigureAwait(false);
                graphs.Add(g);
            }

            if (json)
            {
                var w = ImgImage.NewWriter(out var buf);
                if (chain)
                {
                    w.WriteStartArray();
                    foreach (var (info, _) in infos)
                        QapiCodec.Write(w, info);
                    w.WriteEndArray();
                }
                else
                {
                    QapiCodec.Write(w, infos[0].Info);
                }

                Console.Out.WriteLine(ImgImage.Pretty(buf.WrittenMemory));
            }
            else
            {
                var sb = new StringBuilder();
                for (int i = 0; i < infos.Count; i++)
                {
                    if (i > 0)
                        sb.Append('\n');
                    Human(sb, infos[i].Info, infos[i].Node);
                }

                Console.Out.Write(sb.ToString());
            }
        }
        finally
        {
            foreach (var g in graphs)
                await g.DisposeAsync().ConfigureAwait(false);
        }

        return 0;
    }

    private static void Human(StringBuilder sb, ImageInfo info, BlockNode node)
    {
        var ci = CultureInfo.InvariantCulture;
        sb.Append(ci, $"image: {info.Filename}\n");
        sb.Append(ci, $"file format: {info.Format}\n");
        sb.Append(ci, $"virtual size: {ImgImage.HumanSize(info.VirtualSize)} ({info.VirtualSize} bytes)\n");
        sb.Append("disk size: ").Append(info.ActualSize is { } act ? ImgImage.HumanSize(act) : "unavailable").Append('\n');
        if (info.Encrypted == true)
            sb.Append("encrypted: yes\n");
        if (info.ClusterSize is { } cs)
            sb.Append(ci, $"cluster_size: {cs}\n");
        if (info.DirtyFlag == true)
            sb.Append("cleanly shut down: no\n");
        if (info.BackingFilename is { } bf)
        {
            sb.Append("backing file: ").Append(bf);
            if (info.FullBackingFilename is { } full && full != bf)
                sb.Append(" (actual path: ").Append(full).Append(')');
            sb.Append('\n');
        }

        if (info.BackingFilenameFormat is { } bff)
            sb.Append("backing file format: ").Append(bff).Append('\n');
        if (InternalSnapshotLookup.Of(node) is { } q && q.InternalSnapshots.Count > 0)
        {
            sb.Append("Snapshot list:\n");
            AppendSnapshots(sb, q);
        }

        if (node is IFormatSpecificInfo specific)
        {
            sb.Append("Format specific information:\n");
            specific.AppendFormatSpecific(sb);
        }
    }

    public static void AppendSnapshots(StringBuilder sb, IInternalSnapshots q)
    {
        var ci = CultureInfo.InvariantCulture;
        sb.Append(SnapshotLine("ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT"));
        foreach (var s in q.InternalSnapshots)
        {
            var date = DateTimeOffset.FromUnixTimeSeconds(s.DateSec).ToLocalTime();
            long ms = s.VmClockNsec / 1_000_000;
            string clock = string.Format(ci, "{0:00}:{1:00}:{2:00}.{3:000}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
            sb.Append(SnapshotLine(s.Id, s.Name, ImgImage.HumanSize(s.VmStateSize), date.ToString("yyyy-MM-dd HH:mm:ss", ci), clock,
                s.Icount >= 0 ? s.Icount.ToString(ci) : ""));
        }
    }

    public static string SnapshotLine(string id, string tag, string vmSize, string date, string clock, string icount) =>
        $"{id,-10}{tag,-17}{vmSize,8}{date,20}{clock,13}{icount,11}\n";
}
