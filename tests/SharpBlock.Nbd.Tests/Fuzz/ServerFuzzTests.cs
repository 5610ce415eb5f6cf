using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Tests.Fuzz;

/// <summary>
/// Sends mutated handshakes and requests to a real server over a socket. Whatever a connection does to
/// itself, the server must stay up and serve the next, well-behaved client correctly. The base seed differs
/// per run; a failure names it, and NBD_FUZZ_SEED=S NBD_FUZZ_CASES=N replays the run (a seed that once found a
/// problem then becomes a regression theory here; none has yet).
/// </summary>
public class ServerFuzzTests
{
    private static byte[] ValidSession(string export)
    {
        var ms = new MemoryStream();
        ms.Write([0, 0, 0, 3]);
        void Opt(NbdOption o, byte[] d)
        {
            var b = new byte[OptionHeader.Size + d.Length];
            new OptionHeader(NbdConstants.IHaveOpt, o, (uint)d.Length).Write(b);
            d.CopyTo(b, OptionHeader.Size);
            ms.Write(b);
        }

        void Req(NbdCommand c, NbdCommandFlags f, ulong off, uint len, byte[]? data = null)
        {
            var b = new byte[RequestHeader.Size];
            new RequestHeader(NbdConstants.RequestMagic, f, c, 7, off, len).Write(b);
            ms.Write(b);
            if (data != null)
                ms.Write(data);
        }

        Opt(NbdOption.List, []);
        Opt(NbdOption.StructuredReply, []);
        Opt(NbdOption.ListMetaContext, RawNbdClient.MetaContextRequest(export));
        Opt(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest(export, NbdConstants.BaseAllocation));
        Opt(NbdOption.Info, RawNbdClient.InfoRequest(export, NbdInfoType.BlockSize));
        Opt(NbdOption.Go, RawNbdClient.InfoRequest(export));
        Req(NbdCommand.Read, NbdCommandFlags.None, 0, 4096);
        Req(NbdCommand.Write, NbdCommandFlags.Fua, 8192, 16, new byte[16]);
        Req(NbdCommand.WriteZeroes, NbdCommandFlags.NoHole, 4096, 4096);
        Req(NbdCommand.BlockStatus, NbdCommandFlags.ReqOne, 0, 65536);
        Req(NbdCommand.Trim, NbdCommandFlags.None, 0, 512);
        Req(NbdCommand.Flush, NbdCommandFlags.None, 0, 0);
        Req(NbdCommand.Read, NbdCommandFlags.Df, 65536, 65536);
        Req(NbdCommand.Disc, NbdCommandFlags.None, 0, 0);
        return ms.ToArray();
    }

    private static byte[] Mutate(byte[] input, Random rng)
    {
        var b = input.ToList();
        int edits = rng.Next(1, 8);
        for (int e = 0; e < edits; e++)
        {
            int at = rng.Next(b.Count);
            switch (rng.Next(5))
            {
                case 0:
                    b[at] = (byte)rng.Next(256);
                    break;
                case 1:
                    b[at] ^= (byte)(1 << rng.Next(8));
                    break;
                case 2:
                    b.RemoveRange(at, Math.Min(rng.Next(1, 16), b.Count - at));
                    break;
                case 3:
                    b.InsertRange(at, Enumerable.Range(0, rng.Next(1, 16)).Select(_ => (byte)rng.Next(256)));
                    break;
                default:
                    // Interesting values in a length or offset field.
                    byte[] v = [0xff, 0xff, 0xff, 0xff];
                    for (int i = 0; i < v.Length && at + i < b.Count; i++)
                        b[at + i] = v[i];
                    break;
            }

            if (b.Count == 0)
                b.Add(0);
        }

        return [.. b];
    }

    /// <summary>One hostile connection; true when the server hung up on it, false when it kept it open.</summary>
    private static async Task<bool> RunCaseAsync(NbdTestServer s, byte[] template, int seed)
    {
        var input = Mutate(template, new Random(seed));
        var c = await RawNbdClient.ConnectAsync(s.Socket);
        await using (c)
        {
            try
            {
                await c.ReadGreetingAsync();
                await c.SendAsync(input);
                // Drain whatever comes back for a moment; the server may also hang up.
                return await c.IsClosedAsync(timeoutMs: 100);
            }
            catch (IOException)
            {
                return true;
            }
        }
    }

    private static async Task CheckServerServesAsync(NbdTestServer s, string path)
    {
        var (good, info) = await RawNbdClient.OpenAsync(s.Socket, "d");
        await using var _g = good;
        Assert.Equal((ulong)new FileInfo(path).Length, info.ExportSize);
        await good.SendRequestAsync(NbdCommand.Read, 1, 100000, 1000);
        Assert.Equal(File.ReadAllBytes(path)[100000..101000], (await good.ReadStructuredReadAsync(1, 100000, 1000)).Data);
    }

    [Fact]
    public async Task Mutated_sessions_never_take_the_server_down()
    {
        await using var s = await NbdTestServer.StartAsync();
        string path = s.Dir.PatternFile("d.raw", 1 << 20);
        await s.ExportFileAsync("d", path, writable: true);
        var template = ValidSession("d");
        int seed = Environment.GetEnvironmentVariable("NBD_FUZZ_SEED") is { } e ? int.Parse(e, System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next(1 << 30);
        int count = Environment.GetEnvironmentVariable("NBD_FUZZ_CASES") is { } n ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : 150;
        int ran = 0, hungUp = 0, keptOpen = 0;
        // Several hostile connections at once, as a real attacker would.
        for (int batch = 0; batch < count; batch += 10)
        {
            var cases = Enumerable.Range(seed + batch, Math.Min(10, count - batch)).Select(i => RunCaseAsync(s, template, i));
            // A case that never ends is a hang: a failure, not a skip.
            var outcomes = await Task.WhenAll(cases).WaitAsync(TimeSpan.FromSeconds(60));
            ran += outcomes.Length;
            hungUp += outcomes.Count(closed => closed);
            keptOpen += outcomes.Count(closed => !closed);
        }

        await CheckServerServesAsync(s, path);
        Assert.True(s.Server.FaultedSessions == 0, $"NBD_FUZZ_SEED={seed}: {s.Server.LastFault}");
        Assert.Equal(count, ran);
        // Mutations that the server refuses (it hangs up) and ones it still serves must both occur, or the
        // mutator is not reaching the request path at all.
        if (count >= 50)
            Assert.True(hungUp > 0 && keptOpen > 0, $"NBD_FUZZ_SEED={seed}: {hungUp} refused, {keptOpen} kept open");
        // The file still reads back: mutated writes only land inside the export.
        Assert.Equal(1 << 20, new FileInfo(path).Length);
    }
}
