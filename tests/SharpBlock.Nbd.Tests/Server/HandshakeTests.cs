using System.Buffers.Binary;
using System.Text;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Tests.Server;

/// <summary>The negotiation phase against a real server on a Unix socket, byte by byte as a client sees it.</summary>
public class HandshakeTests
{
    private static async Task<NbdTestServer> ServerWithDiskAsync(bool writable = true)
    {
        var s = await NbdTestServer.StartAsync();
        await s.ExportFileAsync("disk0", s.Dir.PatternFile("disk0.raw", 1 << 20), writable);
        return s;
    }

    [Fact]
    public async Task Greeting_offers_fixed_newstyle_and_no_zeroes()
    {
        await using var s = await ServerWithDiskAsync();
        await using var c = await RawNbdClient.ConnectAsync(s.Socket);
        var raw = await c.ReadExactlyAsync(ServerGreeting.Size);
        Assert.Equal("NBDMAGICIHAVEOPT"u8.ToArray(), raw[..16]);
        Assert.Equal(new byte[] { 0, 3 }, raw[16..]);
    }

    [Fact]
    public async Task Export_name_with_and_without_zero_padding()
    {
        await using var s = await ServerWithDiskAsync();
        foreach (bool noZeroes in new[] { true, false })
        {
            await using var c = await RawNbdClient.ConnectAsync(s.Socket);
            await c.ReadGreetingAsync();
            await c.SendClientFlagsAsync(NbdClientFlags.FixedNewstyle | (noZeroes ? NbdClientFlags.NoZeroes : 0));
            await c.SendOptionAsync(NbdOption.ExportName, Encoding.UTF8.GetBytes("disk0"));
            var info = ExportInfo.Read(await c.ReadExactlyAsync(ExportInfo.Size));
            Assert.Equal(1UL << 20, info.ExportSize);
            Assert.True(info.Flags.HasFlag(NbdTransmissionFlags.HasFlags));
            Assert.True(info.Flags.HasFlag(NbdTransmissionFlags.SendFlush));
            if (!noZeroes)
                Assert.All(await c.ReadExactlyAsync(124), b => Assert.Equal(0, b));
            // In transmission now: a simple reply to a read, with the data.
            await c.SendRequestAsync(NbdCommand.Read, 5, 0, 16);
            var r = await c.ReadReplyAsync();
            Assert.Null(r.Chunk);
            Assert.Equal(0u, r.Error);
            Assert.Equal(File.ReadAllBytes(s.Dir.File("disk0.raw"))[..16], await c.ReadExactlyAsync(16));
        }
    }

    [Fact]
    public async Task Unknown_export_name_closes_the_connection()
    {
        await using var s = await ServerWithDiskAsync();
        await using var c = await RawNbdClient.ConnectAsync(s.Socket);
        await c.ReadGreetingAsync();
        await c.SendClientFlagsAsync(NbdClientFlags.FixedNewstyle);
        await c.SendOptionAsync(NbdOption.ExportName, Encoding.UTF8.GetBytes("nope"));
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task Unknown_client_flags_close_the_connection()
    {
        await using var s = await ServerWithDiskAsync();
        await using var c = await RawNbdClient.ConnectAsync(s.Socket);
        await c.ReadGreetingAsync();
        await c.SendClientFlagsAsync((NbdClientFlags)0x80);
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task List_info_unknown_options_and_abort()
    {
        await using var s = await ServerWithDiskAsync();
        await s.ExportFileAsync("disk1", s.Dir.PatternFile("disk1.raw", 4096), writable: false);
        await using var c = await RawNbdClient.ConnectAsync(s.Socket);
        await c.ReadGreetingAsync();
        await c.SendClientFlagsAsync(NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes);

        // An option we do not know: ERR_UNSUP, and negotiation goes on.
        await c.SendOptionAsync((NbdOption)200, [1, 2, 3]);
        var r = await c.ReadOptionReplyAsync();
        Assert.Equal(NbdOptionReplyType.ErrUnsup, r.Header.Type);
        Assert.Equal((NbdOption)200, r.Header.Option);

        await c.SendOptionAsync(NbdOption.List, []);
        var names = new List<string>();
        while (true)
        {
            r = await c.ReadOptionReplyAsync();
            if (r.Header.Type == NbdOptionReplyType.Ack)
                break;
            Assert.Equal(NbdOptionReplyType.Server, r.Header.Type);
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(r.Data);
            names.Add(Encoding.UTF8.GetString(r.Data, 4, len));
        }

        Assert.Equal(["disk0", "disk1"], names.Order());

        await c.SendOptionAsync(NbdOption.List, [0]);
        Assert.Equal(NbdOptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Header.Type);

        await c.SendOptionAsync(NbdOption.Info, RawNbdClient.InfoRequest("disk1", NbdInfoType.Name, NbdInfoType.Description, NbdInfoType.BlockSize));
        var infos = new Dictionary<NbdInfoType, byte[]>();
        while (true)
        {
            r = await c.ReadOptionReplyAsync();
            if (r.Header.Type == NbdOptionReplyType.Ack)
                break;
            Assert.Equal(NbdOptionReplyType.Info, r.Header.Type);
            infos[(NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(r.Data)] = r.Data[2..];
        }

        var export = ExportInfo.Read(infos[NbdInfoType.Export]);
        Assert.Equal(4096UL, export.ExportSize);
        Assert.True(export.Flags.HasFlag(NbdTransmissionFlags.ReadOnly));
        Assert.True(export.Flags.HasFlag(NbdTransmissionFlags.CanMultiConn));
        Assert.Equal("disk1", Encoding.UTF8.GetString(infos[NbdInfoType.Name]));
        Assert.Equal("test export disk1", Encoding.UTF8.GetString(infos[NbdInfoType.Description]));
        Assert.Equal(new BlockSizeInfo(1, 4096, 32 << 20), BlockSizeInfo.Read(infos[NbdInfoType.BlockSize]));

        await c.SendOptionAsync(NbdOption.Info, RawNbdClient.InfoRequest("missing"));
        r = await c.ReadOptionReplyAsync();
        Assert.Equal(NbdOptionReplyType.ErrUnknown, r.Header.Type);
        Assert.Contains("missing", Encoding.UTF8.GetString(r.Data), StringComparison.Ordinal);

        // A truncated INFO request is answered, not fatal.
        await c.SendOptionAsync(NbdOption.Info, [0, 0, 0, 9, 1]);
        Assert.Equal(NbdOptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Header.Type);

        await c.SendOptionAsync(NbdOption.Abort, []);
        Assert.Equal(NbdOptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Header.Type);
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task Meta_contexts_need_structured_replies_and_list_base_allocation()
    {
        await using var s = await ServerWithDiskAsync();
        await using var c = await RawNbdClient.ConnectAsync(s.Socket);
        await c.ReadGreetingAsync();
        await c.SendClientFlagsAsync(NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes);

        await c.SendOptionAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest("disk0", "base:allocation"));
        Assert.Equal(NbdOptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Header.Type);

        await c.SendOptionAsync(NbdOption.StructuredReply, []);
        Assert.Equal(NbdOptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Header.Type);

        foreach (var query in new[] { Array.Empty<string>(), ["base:"], ["base:allocation", "qemu:dirty-bitmap:x"] })
        {
            await c.SendOptionAsync(NbdOption.ListMetaContext, RawNbdClient.MetaContextRequest("disk0", query));
            var r = await c.ReadOptionReplyAsync();
            Assert.Equal(NbdOptionReplyType.MetaContext, r.Header.Type);
            Assert.Equal("base:allocation", Encoding.UTF8.GetString(r.Data, 4, r.Data.Length - 4));
            Assert.Equal(NbdOptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Header.Type);
        }

        await c.SendOptionAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest("disk0", "qemu:dirty-bitmap:x"));
        Assert.Equal(NbdOptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Header.Type);

        await c.SendOptionAsync(NbdOption.SetMetaContext, RawNbdClient.MetaContextRequest("disk0", "base:allocation"));
        var set = await c.ReadOptionReplyAsync();
        Assert.Equal(NbdOptionReplyType.MetaContext, set.Header.Type);
        Assert.Equal(NbdConstants.BaseAllocationId, BinaryPrimitives.ReadUInt32BigEndian(set.Data));
        Assert.Equal(NbdOptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Header.Type);

        await c.SendOptionAsync(NbdOption.SetMetaContext, [0, 0, 0, 200]);
        Assert.Equal(NbdOptionReplyType.ErrInvalid, (await c.ReadOptionReplyAsync()).Header.Type);
    }

    [Fact]
    public async Task A_session_sent_one_byte_per_write_is_understood()
    {
        await using var s = await ServerWithDiskAsync();
        await using var c = await RawNbdClient.ConnectAsync(s.Socket);
        await c.ReadGreetingAsync();
        var msg = new List<byte> { 0, 0, 0, 3 };
        void Opt(NbdOption o, byte[] d)
        {
            var b = new byte[OptionHeader.Size + d.Length];
            new OptionHeader(NbdConstants.IHaveOpt, o, (uint)d.Length).Write(b);
            d.CopyTo(b, OptionHeader.Size);
            msg.AddRange(b);
        }

        Opt(NbdOption.StructuredReply, []);
        Opt(NbdOption.Go, RawNbdClient.InfoRequest("disk0"));
        var req = new byte[RequestHeader.Size + 3];
        new RequestHeader(NbdConstants.RequestMagic, NbdCommandFlags.None, NbdCommand.Write, 77, 10, 3).Write(req);
        req[^3] = 1;
        req[^2] = 2;
        req[^1] = 3;
        msg.AddRange(req);
        foreach (byte b in msg)
            await c.SendAsync([b]);

        Assert.Equal(NbdOptionReplyType.Ack, (await c.ReadOptionReplyAsync()).Header.Type);
        while ((await c.ReadOptionReplyAsync()).Header.Type != NbdOptionReplyType.Ack)
        {
        }

        Assert.Equal(new Reply(77, 0, null, []), await c.ReadReplyAsync());
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(s.Dir.File("disk0.raw"))[10..13]);
    }

    [Fact]
    public async Task A_client_that_never_finishes_negotiating_is_dropped()
    {
        // Long enough that a well-behaved client's negotiation (milliseconds) never races it on a loaded machine.
        var timeout = TimeSpan.FromSeconds(1);
        var limits = new SharpBlock.Nbd.Server.NbdServerLimits { HandshakeTimeout = timeout };
        await using var s = await NbdTestServer.StartAsync(limits: limits);
        await s.ExportFileAsync("disk0", s.Dir.PatternFile("disk0.raw", 4096), writable: false);
        await using var idle = await RawNbdClient.ConnectAsync(s.Socket);
        await idle.ReadGreetingAsync();
        await idle.SendClientFlagsAsync(NbdClientFlags.FixedNewstyle);
        Assert.True(await idle.IsClosedAsync(timeoutMs: 15000));

        // The timeout covers negotiation only: a client in transmission may stay idle.
        var (c, _) = await RawNbdClient.OpenAsync(s.Socket, "disk0");
        await using var _c = c;
        // Idle for twice the negotiation timeout: the timer must not be running any more.
        await Task.Delay(2 * timeout);
        await c.SendRequestAsync(NbdCommand.Read, 1, 0, 16);
        Assert.Equal(16, (await c.ReadStructuredReadAsync(1, 0, 16)).Data.Length);
    }
}
