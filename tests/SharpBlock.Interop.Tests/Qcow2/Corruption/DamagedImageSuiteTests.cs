using System.Text.Json;
using SharpBlock.Testing;
using Xunit.Abstractions;

namespace SharpBlock.Interop.Tests.Qcow2.Corruption;

/// <summary>
/// Every damaged image of <see cref="DamageVariants"/> goes through QEMU (qemu-io on the file) and through
/// us (the daemon's graph over a real QMP socket, the guest's requests from qemu-io over NBD); then both
/// results are judged by qemu-img. We must match QEMU or be safer: refuse every write QEMU refuses, mark
/// the image corrupt whenever QEMU does, leave no more damage than QEMU leaves, and keep the data written
/// before the damage intact.
/// </summary>
public class DamagedImageSuiteTests(ITestOutputHelper output)
{
    private sealed record Outcome(bool Opened, bool[] OpOk, bool CorruptBit, long ErrorsAfter, bool DataIntact)
    {
        public override string ToString() =>
            $"opened={Opened} ops=[{string.Join(",", Array.ConvertAll(OpOk, o => o ? "ok" : "refused"))}] corrupt={CorruptBit} errors-after={ErrorsAfter} intact={DataIntact}";
    }

    [Fact]
    public async Task Every_damaged_image_is_handled_as_qemu_handles_it_or_more_safely()
    {
        using var dir = new TempDir();
        var failures = new List<string>();
        int refusedMore = 0, servedMore = 0;
        foreach (var v in DamageVariants.All)
        {
            string qemuCopy = dir.File("qemu.qcow2");
            string ourCopy = dir.File("ours.qcow2");
            var img = await DamagedImage.CreateAsync(dir.File("base.qcow2"), v.CreateOptions, v.Snapshot);
            v.Patch(img);
            // A patch that cuts the file takes data with it; what the damage left must then stay.
            bool intactBefore = DataIntact(img, img.Path);
            long errorsBefore = await CheckErrorsAsync(img.Path);
            File.Copy(img.Path, qemuCopy, true);
            File.Copy(img.Path, ourCopy, true);

            var qemu = await RunQemuAsync(img, qemuCopy);
            var ours = await RunOursAsync(img, ourCopy);
            output.WriteLine($"{v.Name}\n  qemu: {qemu}\n  ours: {ours}");

            var why = new List<string>();
            if (qemu.Opened != ours.Opened)
                why.Add("open differs");
            for (int i = 0; i < qemu.OpOk.Length && ours.Opened; i++)
            {
                bool write = DamageVariants.GuestOps[i].StartsWith("write", StringComparison.Ordinal);
                if (write && !qemu.OpOk[i] && ours.OpOk[i])
                    why.Add($"we accepted '{DamageVariants.GuestOps[i]}' that QEMU refused");
                if (qemu.OpOk[i] && !ours.OpOk[i])
                    refusedMore++;
                if (!qemu.OpOk[i] && ours.OpOk[i])
                    servedMore++;
            }

            if (qemu.CorruptBit && !ours.CorruptBit)
                why.Add("QEMU marked the image corrupt, we did not");
            // Damage may stay as it was (a refused write heals nothing), but we must add none beyond QEMU's.
            if (ours.ErrorsAfter > Math.Max(qemu.ErrorsAfter, errorsBefore))
                why.Add($"qemu-img check finds more damage after us ({ours.ErrorsAfter}) than before ({errorsBefore}) or after QEMU ({qemu.ErrorsAfter})");
            if (intactBefore && !ours.DataIntact)
                why.Add("data written before the damage was overwritten");
            if (why.Count > 0)
                failures.Add($"{v.Name}: {string.Join("; ", why)}\n  qemu: {qemu}\n  ours: {ours}");
        }

        output.WriteLine($"{DamageVariants.All.Count} variants tried, {DamageVariants.All.Count - failures.Count} matched QEMU's outcome or a safer one ({refusedMore} requests refused that QEMU let through, {servedMore} reads served where QEMU's node was already gone)");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>
    /// `sharpblock img check` finds damage exactly where qemu-img check does, and `check -r all` leaves an image
    /// qemu-img calls clean wherever qemu-img's own repair does, with the old data still readable.
    /// </summary>
    [Fact]
    public async Task Img_check_finds_and_repairs_what_qemu_img_check_does()
    {
        using var dir = new TempDir();
        var failures = new List<string>();
        int repaired = 0;
        foreach (var v in DamageVariants.All)
        {
            var img = await DamagedImage.CreateAsync(dir.File("base.qcow2"), v.CreateOptions, v.Snapshot);
            v.Patch(img);
            var qemu = await Tools.RunAsync("qemu-img", "check", img.Path);
            var ours = await Tools.RunAsync("sharpblock", "img", "check", img.Path);
            if ((qemu.ExitCode == 0) != (ours.ExitCode == 0) || (qemu.ExitCode == 2) != (ours.ExitCode == 2))
                failures.Add($"{v.Name}: qemu-img check exit {qemu.ExitCode}, ours {ours.ExitCode}\n{ours.Stdout}{ours.Stderr}");
            if (qemu.ExitCode != 2 || !intactForRepair(img))
                continue;

            string qemuCopy = dir.File("q.qcow2");
            string ourCopy = dir.File("o.qcow2");
            File.Copy(img.Path, qemuCopy, true);
            File.Copy(img.Path, ourCopy, true);
            await Tools.RunAsync("qemu-img", "check", "-r", "all", qemuCopy);
            if ((await Tools.RunAsync("qemu-img", "check", qemuCopy)).ExitCode != 0)
                continue;
            var fix = await Tools.RunAsync("sharpblock", "img", "check", "-r", "all", ourCopy);
            var after = await Tools.RunAsync("qemu-img", "check", ourCopy);
            var read = await Tools.RunAsync("qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x22 1M 64k", ourCopy);
            var qemuRead = await Tools.RunAsync("qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x22 1M 64k", qemuCopy);
            bool readsAsQemu = read.Stdout.StartsWith("read ", StringComparison.Ordinal) || !qemuRead.Stdout.StartsWith("read ", StringComparison.Ordinal);
            if (after.ExitCode != 0 || !readsAsQemu)
                failures.Add($"{v.Name}: after our repair qemu-img check says {after.ExitCode}: {after.Stdout}{after.Stderr}\nrepair: {fix.Stdout}{fix.Stderr}\nread: {read.Stdout}");
            repaired++;
        }

        output.WriteLine($"{DamageVariants.All.Count} variants checked, {repaired} repaired and judged clean by qemu-img");
        Assert.True(failures.Count == 0, string.Join("\n", failures));

        static bool intactForRepair(DamagedImage i) => i.HostBytesAre(i.Data1M, 0x22);
    }

    private static async Task<Outcome> RunQemuAsync(DamagedImage img, string path)
    {
        var args = new List<string> { "-f", "qcow2" };
        foreach (string op in DamageVariants.GuestOps)
        {
            args.Add("-c");
            args.Add(op);
        }

        args.Add(path);
        var r = await Tools.RunAsync("qemu-io", args);
        return await JudgeAsync(img, path, r.Stdout + (r.Stderr.Contains("can't open", StringComparison.Ordinal) ? r.Stderr : ""));
    }

    private static async Task<Outcome> RunOursAsync(DamagedImage img, string path)
    {
        string said;
        // The graph closes (and lets go of the image) before the file is judged.
        await using (var h = await QmpHarness.StartAsync())
        {
            var add = await h.Client.ExecuteAsync("blockdev-add",
                $"{{\"driver\": \"qcow2\", \"id\": \"d0\", \"file\": {{\"driver\": \"file\", \"filename\": {JsonSerializer.Serialize(path)}}}}}");
            if (!add.TryGetProperty("return", out _))
            {
                said = "can't open device: " + add;
            }
            else
            {
                await h.StartNbdAsync();
                await h.ExportAsync("d0", writable: true);
                var args = new List<string> { "-f", "raw" };
                foreach (string op in DamageVariants.GuestOps)
                {
                    args.Add("-c");
                    args.Add(op);
                }

                args.Add(h.Url("d0"));
                var r = await Tools.RunAsync("qemu-io", args);
                said = r.Stdout + (r.Stderr.Contains("can't open", StringComparison.Ordinal) ? r.Stderr : "");
            }
        }

        return await JudgeAsync(img, path, said);
    }

    /// <summary>Reads what qemu-io said of each request, then what the file now holds, as qemu-img sees it.</summary>
    private static async Task<Outcome> JudgeAsync(DamagedImage img, string path, string ioOutput)
    {
        bool opened = !ioOutput.Contains("can't open", StringComparison.Ordinal);
        var ok = new bool[DamageVariants.GuestOps.Length];
        if (opened)
        {
            // qemu-io answers each -c in order on stdout: "wrote"/"read" on success (after a "Pattern
            // verification failed" line when the bytes were wrong), "write failed: ..." otherwise.
            int i = 0;
            bool mismatch = false;
            foreach (string line in ioOutput.Split('\n'))
            {
                if (i >= ok.Length)
                    break;
                if (line.StartsWith("Pattern verification failed", StringComparison.Ordinal))
                {
                    mismatch = true;
                }
                else if (line.StartsWith("write failed", StringComparison.Ordinal) || line.StartsWith("read failed", StringComparison.Ordinal))
                {
                    ok[i++] = false;
                    mismatch = false;
                }
                else if (line.StartsWith("wrote ", StringComparison.Ordinal) || line.StartsWith("read ", StringComparison.Ordinal))
                {
                    ok[i++] = !mismatch;
                    mismatch = false;
                }
            }
        }

        byte[] header = new byte[80];
        using (var fs = File.OpenRead(path))
            fs.ReadExactly(header);
        bool v3 = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)) >= 3;
        bool corrupt = v3 && (System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(72)) & 2) != 0;

        return new Outcome(opened, ok, corrupt, await CheckErrorsAsync(path), DataIntact(img, path));
    }

    /// <summary>What qemu-img check counts as damage (corruptions and check errors); an image it cannot open, the most.</summary>
    private static async Task<long> CheckErrorsAsync(string path)
    {
        var check = await Tools.RunAsync("qemu-img", "check", "-U", "--output=json", path);
        long errors;
        try
        {
            using var doc = JsonDocument.Parse(check.Stdout);
            errors = doc.RootElement.TryGetProperty("corruptions", out var c) ? c.GetInt64() : 0;
            if (doc.RootElement.TryGetProperty("check-errors", out var ce))
                errors += ce.GetInt64();
        }
        catch (JsonException)
        {
            // An image qemu-img cannot even open counts as the worst damage.
            errors = long.MaxValue;
        }

        return errors;
    }

    /// <summary>
    /// Guest 1 MiB must still hold 0x22 where it was written; guest 0 its 0x11, but for a first 4 KiB that a
    /// write allowed through may have made 0x33.
    /// </summary>
    private static bool DataIntact(DamagedImage img, string path)
    {
        using var fs = File.OpenRead(path);
        byte[] b = new byte[DamagedImage.ClusterSize];
        bool Is(long at, int from, int to, params byte[] allowed)
        {
            if (at + DamagedImage.ClusterSize > fs.Length)
                return false;
            fs.Position = at;
            fs.ReadExactly(b);
            byte first = b[from];
            if (Array.IndexOf(allowed, first) < 0)
                return false;
            for (int i = from; i < to; i++)
            {
                if (b[i] != first)
                    return false;
            }

            return true;
        }

        return Is(img.Data1M, 0, DamagedImage.ClusterSize, 0x22)
            && Is(img.Data0, 4096, DamagedImage.ClusterSize, 0x11)
            && Is(img.Data0, 0, 4096, 0x11, 0x33);
    }
}
