using System.Globalization;
using System.Text;
using SharpBlock.Drivers;
using SharpBlock.Qmp.Schema;
using SharpBlock.Schema;

namespace SharpBlock.Cli.Img;

/// <summary>
/// `img check [-f FMT] [-r leaks|all] [--output=human|json] FILE`. Exit codes as qemu-img: 0 clean,
/// 1 the check itself failed, 2 corruptions remain, 3 only leaks remain, 63 format cannot be checked.
/// </summary>
internal static class ImgCheck
{
    public static async Task<int> RunAsync(string[] argv)
    {
        var a = ImgArgs.Parse(argv, "fr", "qhU", ["output", "object"], ["force-share", "image-opts"]);
        if (a.Positional.Count != 1)
            throw ImgUsageException.Syntax("Expecting one image file name");
        bool json = a.Json();
        var mode = a.Get("-r") switch
        {
            null => ImageCheckMode.None,
            "leaks" => ImageCheckMode.Leaks,
            "all" => ImageCheckMode.All,
            var r => throw new ImgUsageException($"Invalid option for -r: '{r}'"),
        };
        string path = a.Positional[0];
        var (graph, node) = await ImgImage.OpenAsync(a, path, a.Get("-f"), readOnly: mode == ImageCheckMode.None, forCheck: mode != ImageCheckMode.None).ConfigureAwait(false);
        await using (graph.ConfigureAwait(false))
        {
            if (node is not ICheckableImage q)
            {
                Console.Error.WriteLine($"sharpblock: This image format does not support checks");
                return 63;
            }

            ImageCheckResult r;
            try
            {
                r = await q.CheckAsync(mode, line => Console.Error.WriteLine(line)).ConfigureAwait(false);
            }
            catch (Errors.BlockException ex) when (ex.Errno == Errors.Errno.EOPNOTSUPP)
            {
                // As qemu-img: a format whose check cannot do what was asked (a repair, for vdi) "does not support checks".
                Console.Error.WriteLine($"sharpblock: This image format does not support checks");
                return 63;
            }
            catch (Errors.BlockException ex)
            {
                Console.Error.WriteLine("sharpblock: " + ex.Message);
                return 1;
            }

            var check = new ImageCheck { Filename = path, Format = node.DriverName, CheckErrors = r.CheckErrors };
            if (r.ImageEndOffset != 0)
                check.ImageEndOffset = r.ImageEndOffset;
            if (r.Corruptions != 0)
                check.Corruptions = r.Corruptions;
            if (r.Leaks != 0)
                check.Leaks = r.Leaks;
            if (r.CorruptionsFixed != 0)
                check.CorruptionsFixed = r.CorruptionsFixed;
            if (r.LeaksFixed != 0)
                check.LeaksFixed = r.LeaksFixed;
            if (r.TotalClusters != 0)
                check.TotalClusters = r.TotalClusters;
            if (r.AllocatedClusters != 0)
                check.AllocatedClusters = r.AllocatedClusters;
            if (r.FragmentedClusters != 0)
                check.FragmentedClusters = r.FragmentedClusters;
            if (r.CompressedClusters != 0)
                check.CompressedClusters = r.CompressedClusters;

            if (json)
            {
                var w = ImgImage.NewWriter(out var buf);
                QapiCodec.Write(w, check);
                Console.Out.WriteLine(ImgImage.Pretty(buf.WrittenMemory));
            }
            else
            {
                Console.Out.Write(Human(r, a.Has("-q")));
            }

            if (r.CheckErrors != 0)
                return 1;
            if (r.Corruptions != 0)
                return 2;
            return r.Leaks != 0 ? 3 : 0;
        }
    }

    public static string Human(ImageCheckResult r, bool quiet)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        if (r.LeaksFixed != 0 || r.CorruptionsFixed != 0)
        {
            sb.Append("The following inconsistencies were found and repaired:\n\n");
            sb.Append(ci, $"    {r.LeaksFixed} leaked clusters\n");
            sb.Append(ci, $"    {r.CorruptionsFixed} corruptions\n\n");
            sb.Append("Double checking the fixed image now...\n");
        }

        if (r.Corruptions == 0 && r.Leaks == 0 && r.CheckErrors == 0)
        {
            if (!quiet)
                sb.Append("No errors were found on the image.\n");
        }
        else
        {
            if (r.Corruptions != 0)
                sb.Append(ci, $"\n{r.Corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n");
            if (r.Leaks != 0)
                sb.Append(ci, $"\n{r.Leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n");
            if (r.CheckErrors != 0)
                sb.Append(ci, $"\n{r.CheckErrors} internal errors have occurred during the check.\n");
        }

        if (r.TotalClusters != 0 && r.AllocatedClusters != 0)
        {
            sb.Append(ci, $"{r.AllocatedClusters}/{r.TotalClusters} = {Percent(r.AllocatedClusters * 100.0 / r.TotalClusters)}% allocated, ");
            sb.Append(ci, $"{Percent(r.FragmentedClusters * 100.0 / r.AllocatedClusters)}% fragmented, {Percent(r.CompressedClusters * 100.0 / r.AllocatedClusters)}% compressed clusters\n");
        }

        if (r.ImageEndOffset != 0)
            sb.Append(ci, $"Image end offset: {r.ImageEndOffset}\n");
        return quiet ? "" : sb.ToString();
    }

    /// <summary>
    /// Two decimals as C's printf gives them: the exact binary value is rounded, and an exact tie (only a
    /// multiple of 1/8 can be one, e.g. 3.125) goes to the even digit, where .NET would round it up.
    /// </summary>
    internal static string Percent(double value)
    {
        double eighths = value * 8;
        double hundredths2 = value * 200;
        if (eighths == Math.Floor(eighths) && hundredths2 == Math.Floor(hundredths2) && ((long)hundredths2 & 1) == 1)
            value = Math.Round(value * 100, MidpointRounding.ToEven) / 100;
        return value.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture);
    }
}
