using SharpBlock.Fuzz;
using SharpBlock.Fuzz.Soak;

// The fuzzing driver:
//   afl TARGET                 the AFL++ entry point (scripts/fuzz.sh runs it under afl-fuzz)
//   replay TARGET [FILE...]    runs files (default: the target's seeds) once each and says what escaped
//   mutations TARGET N         the test suite's N deterministic mutations, naming each case that fails
//   qcow2-soak N [FIRST]       N mutated images through open/write/read-back/reopen, with the counts
//   make-seeds DIR             writes the NBD seed corpus (the qcow2 one comes from make-corpus.sh)
//   list                       the targets
if (args.Length == 0)
    return Usage();

switch (args[0])
{
    case "list":
        foreach (var t in FuzzTargets.All)
            Console.WriteLine($"{t.Name,-8} {t.Summary}");
        return 0;

    case "make-seeds" when args.Length == 2:
        Directory.CreateDirectory(args[1]);
        foreach (var (name, bytes) in SharpBlock.Fuzz.Seeds.NbdSeeds.All())
            File.WriteAllBytes(Path.Combine(args[1], name + ".bin"), bytes);
        return 0;

    case "afl" when args.Length == 2 && FuzzTargets.Find(args[1]) is { } target:
        SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
        {
            using var ms = new MemoryStream();
            stream.CopyTo(ms);
            target.Run(ms.ToArray());
        });
        return 0;

    case "replay" when args.Length >= 2 && FuzzTargets.Find(args[1]) is { } target:
        int failed = 0;
        var files = args.Length > 2 ? args[2..] : [.. target.Seeds()];
        foreach (string f in files)
        {
            try
            {
                target.RunBounded(File.ReadAllBytes(f), TimeSpan.FromSeconds(10));
                Console.WriteLine($"ok      {f}");
            }
#pragma warning disable CA1031 // Reporting what escaped is the point.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                failed++;
                Console.WriteLine($"FAILED  {f}: {ex.GetType().Name}: {ex.Message}");
                Console.WriteLine(ex.StackTrace);
            }
        }

        return failed == 0 ? 0 : 1;

    case "mutations" when args.Length == 3 && FuzzTargets.Find(args[1]) is { } target && int.TryParse(args[2], out int count):
        var pool = target.Seeds().Select(File.ReadAllBytes).ToArray();
        bool image = target.Name == "qcow2";
        int bad = 0;
        for (int c = 0; c < count; c++)
        {
            var input = Mutator.Mutate(pool[c % pool.Length], new Random(c), headerBytes: image ? 512 : 64, resize: !image);
            try
            {
                target.RunBounded(input, TimeSpan.FromSeconds(3));
            }
#pragma warning disable CA1031 // Reporting what escaped is the point.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                bad++;
                Console.WriteLine($"case {c} (seed {c % pool.Length}): {ex.GetType().Name}: {ex.Message}");
            }
        }

        return bad == 0 ? 0 : 1;

    case "qcow2-soak" when args.Length is 2 or 3 && int.TryParse(args[1], out int images):
        int first = args.Length == 3 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 0;
        var qcow2 = FuzzTargets.Find("qcow2")!;
        var seeds = qcow2.Seeds().Select(File.ReadAllBytes).ToList();
        string findings = Directory.Exists("bench/fuzz/findings") ? "bench/fuzz/findings" : "findings";
        var soak = new Qcow2Soak(seeds, findings, TimeSpan.FromSeconds(20));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        soak.Run(images, first, Console.Out);
        Console.WriteLine($"qcow2 soak: cases {first}..{first + images - 1} over {seeds.Count} seeds in {clock.Elapsed.TotalSeconds:0} s");
        Console.WriteLine(soak.Counts.Report());
        Console.WriteLine($"findings (if any) in {Path.GetFullPath(findings)}");
        return soak.Counts.Crashes + soak.Counts.Hangs + soak.Counts.LostSameOpen + soak.Counts.LostAfterReopen == 0 ? 0 : 1;

    default:
        return Usage();
}

static int Usage()
{
    Console.Error.WriteLine("usage: SharpBlock.Fuzz list | make-seeds DIR | afl TARGET | replay TARGET [FILE...] | qcow2-soak N [FIRST]");
    return 2;
}
