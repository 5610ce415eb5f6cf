using System.Net.Sockets;
using System.Text.Json;
using SharpBlock.Errors;
using SharpBlock.Graph;
using SharpBlock.Nbd.Client;
using SharpBlock.Nbd.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Nbd.Tests.Fuzz;

/// <summary>
/// A fake server sends a mutated transcript (greeting, option replies, a read reply) and hangs up. The
/// client driver must open and read, or fail with a BlockException; never hang, never throw anything else.
/// </summary>
public class ClientFuzzTests
{
    private static byte[] Transcript()
    {
        var ms = new MemoryStream();
        var g = new byte[ServerGreeting.Size];
        new ServerGreeting(NbdConstants.NbdMagic, NbdConstants.IHaveOpt, NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes).Write(g);
        ms.Write(g);
        void Rep(NbdOption o, NbdOptionReplyType t, byte[] d)
        {
            var b = new byte[OptionReplyHeader.Size + d.Length];
            new OptionReplyHeader(NbdConstants.OptionReplyMagic, o, t, (uint)d.Length).Write(b);
            d.CopyTo(b, OptionReplyHeader.Size);
            ms.Write(b);
        }

        Rep(NbdOption.StructuredReply, NbdOptionReplyType.Ack, []);
        Rep(NbdOption.SetMetaContext, NbdOptionReplyType.MetaContext, [0, 0, 0, 1, .. "base:allocation"u8]);
        Rep(NbdOption.SetMetaContext, NbdOptionReplyType.Ack, []);
        var info = new byte[2 + ExportInfo.Size];
        new ExportInfo(65536, NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush).Write(info.AsSpan(2));
        Rep(NbdOption.Go, NbdOptionReplyType.Info, info);
        Rep(NbdOption.Go, NbdOptionReplyType.Ack, []);

        // Cookie 1: the first read; half data, half hole.
        var data = new byte[StructuredReplyHeader.Size + 8 + 32768];
        new StructuredReplyHeader(NbdConstants.StructuredReplyMagic, NbdChunkFlags.None, NbdChunkType.OffsetData, 1, 8 + 32768).Write(data);
        ms.Write(data);
        var hole = new byte[StructuredReplyHeader.Size + OffsetHole.Size];
        new StructuredReplyHeader(NbdConstants.StructuredReplyMagic, NbdChunkFlags.Done, NbdChunkType.OffsetHole, 1, OffsetHole.Size).Write(hole);
        new OffsetHole(32768, 32768).Write(hole.AsSpan(StructuredReplyHeader.Size));
        ms.Write(hole);
        return ms.ToArray();
    }

    private static byte[] Mutate(byte[] input, Random rng)
    {
        var b = (byte[])input.Clone();
        int edits = rng.Next(1, 6);
        for (int e = 0; e < edits; e++)
        {
            // Most of the interesting bytes are headers: bias edits towards them.
            int at = rng.Next(2) == 0 ? rng.Next(Math.Min(b.Length, 200)) : rng.Next(b.Length);
            b[at] = rng.Next(3) switch
            {
                0 => (byte)rng.Next(256),
                1 => (byte)(b[at] ^ (1 << rng.Next(8))),
                _ => 0xff,
            };
        }

        if (rng.Next(4) == 0)
            Array.Resize(ref b, rng.Next(b.Length));
        return b;
    }

    [Fact]
    public async Task Mutated_server_replies_end_in_data_or_a_block_exception()
    {
        using var dir = new TempDir();
        string sock = dir.File("fake.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(sock));
        listener.Listen(8);
        var template = Transcript();
        var registry = BlockDriverRegistry.CreateDefault();
        NbdClientDriver.Register(registry);
        int opened = 0, failed = 0;
        int count = Environment.GetEnvironmentVariable("NBD_FUZZ_CASES") is { } n ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : 200;
        // NBD_FUZZ_SEED=S with NBD_FUZZ_CASES=1 replays one case; by default the run starts with the unmutated transcript.
        int first = Environment.GetEnvironmentVariable("NBD_FUZZ_SEED") is { } e ? int.Parse(e, System.Globalization.CultureInfo.InvariantCulture) : 0;
        int ran = 0;
        for (int seed = first; seed < first + count; seed++)
        {
            ran++;
            byte[] bytes = seed == 0 ? template : Mutate(template, new Random(seed));
            var serve = Task.Run(async () =>
            {
                using var s = await listener.AcceptAsync();
                try
                {
                    await s.SendAsync(bytes);
                    await Task.Delay(20);
                }
                catch (SocketException)
                {
                }
            });

            await using var graph = new BlockGraph(registry);
            using var doc = JsonDocument.Parse("{\"driver\":\"nbd\",\"node-name\":\"n\",\"read-only\":true,\"server\":{\"type\":\"unix\",\"data\":{\"path\":\"" + sock + "\"}}}");
            var work = Task.Run(async () =>
            {
                var node = await graph.AddAsync(QapiCodec.ReadBlockdevOptions(doc.RootElement, "", false));
                var buf = new byte[Math.Min(65536, node.Length)];
                await node.ReadAsync(0, buf);
            });
            var done = await Task.WhenAny(work, Task.Delay(10000));
            Assert.True(done == work, $"seed {seed}: the client hung");
            if (work.IsFaulted)
            {
                var ex = work.Exception!.InnerException!;
                Assert.True(ex is BlockException, $"seed {seed}: {ex}");
                failed++;
            }
            else
            {
                opened++;
            }

            await serve;
        }

        Assert.Equal(count, ran);
        if (count >= 50)
            Assert.True(opened > 0 && failed > 0, $"{opened} opened, {failed} refused: both kinds must occur");
    }
}
