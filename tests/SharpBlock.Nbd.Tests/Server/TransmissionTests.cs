using System.Buffers.Binary;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Tests.Server;

/// <summary>Commands, their errors and their effect on the file on disk, through a real socket.</summary>
public class TransmissionTests
{
    private const int Size = 1 << 20;

    [Fact]
    public async Task Structured_read_sends_holes_as_holes()
    {
        await using var s = await NbdTestServer.StartAsync();
        string path = s.Dir.File("sparse.raw");
        using (var f = File.Create(path))
        {
            f.SetLength(Size);
            f.Position = 64 << 10;
            f.Write(Enumerable.Repeat((byte)0x5a, 64 << 10).ToArray());
        }

        await s.ExportFileAsync("d", path, writable: false);
        var (c, _) = await RawNbdClient.OpenAsync(s.Socket, "d");
        await using var _c = c;
        await c.SendRequestAsync(NbdCommand.Read, 1, 0, Size);
        var (data, chunks) = await c.ReadStructuredReadAsync(1, 0, Size);
        Assert.Equal(File.ReadAllBytes(path), data);
        Assert.Contains(NbdChunkType.OffsetHole, chunks);
        Assert.Contains(NbdChunkType.OffsetData, chunks);

        // DF: one data chunk, zeros included.
        await c.SendRequestAsync(NbdCommand.Read, 2, 0, 128 << 10, NbdCommandFlags.Df);
        (data, chunks) = await c.ReadStructuredReadAsync(2, 0, 128 << 10);
        Assert.Equal([NbdChunkType.OffsetData], chunks);
        Assert.Equal(File.ReadAllBytes(path)[..(128 << 10)], data);

        await c.SendRequestAsync(NbdCommand.BlockStatus, 3, 0, Size);
        var r = await c.ReadReplyAsync();
        Assert.Equal(NbdChunkType.BlockStatus, r.Chunk!.Value.Type);
        Assert.True(r.Chunk.Value.IsDone);
        Assert.Equal(NbdConstants.BaseAllocationId, BinaryPrimitives.ReadUInt32BigEndian(r.Payload));
        var extents = new List<BlockStatusDescriptor>();
        for (int i = 4; i < r.Payload.Length; i += 8)
            extents.Add(BlockStatusDescriptor.Read(r.Payload.AsSpan(i)));
        Assert.Equal(Size, extents.Sum(e => (long)e.Length));
        Assert.Equal(new BlockStatusDescriptor(64 << 10, 3), extents[0]);
        Assert.Equal(new BlockStatusDescriptor(64 << 10, 0), extents[1]);

        await c.SendRequestAsync(NbdCommand.BlockStatus, 4, 0, Size, NbdCommandFlags.ReqOne);
        r = await c.ReadReplyAsync();
        Assert.Equal(4 + 8, r.Payload.Length);
    }

    [Fact]
    public async Task Writes_zeroes_trim_flush_reach_the_file()
    {
        await using var s = await NbdTestServer.StartAsync();
        string path = s.Dir.PatternFile("d.raw", Size);
        var dev = await s.ExportFileAsync("d", path, writable: true, extra: ",\"discard\":\"unmap\"");
        var (c, info) = await RawNbdClient.OpenAsync(s.Socket, "d");
        await using var _c = c;
        Assert.False(info.Flags.HasFlag(NbdTransmissionFlags.ReadOnly));
        Assert.True(info.Flags.HasFlag(NbdTransmissionFlags.SendWriteZeroes));

        var data = Enumerable.Repeat((byte)0xee, 8192).ToArray();
        await c.SendRequestAsync(NbdCommand.Write, 1, 4096, 8192, NbdCommandFlags.Fua, data);
        Assert.Equal(new Reply(1, 0, null, []), await c.ReadReplyAsync());
        await c.SendRequestAsync(NbdCommand.WriteZeroes, 2, 65536, 65536, NbdCommandFlags.NoHole);
        Assert.Equal(0u, (await c.ReadReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.WriteZeroes, 3, 131072, 65536);
        Assert.Equal(0u, (await c.ReadReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.Trim, 4, 262144, 65536);
        Assert.Equal(0u, (await c.ReadReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.Cache, 5, 0, 4096);
        Assert.Equal(0u, (await c.ReadReplyAsync()).Error);
        await c.SendRequestAsync(NbdCommand.Flush, 6, 0, 0);
        Assert.Equal(0u, (await c.ReadReplyAsync()).Error);

        var disk = File.ReadAllBytes(path);
        Assert.Equal(data, disk[4096..12288]);
        Assert.All(disk[65536..196608], b => Assert.Equal(0, b));
        Assert.All(disk[262144..327680], b => Assert.Equal(0, b));

        // The device's statistics saw the NBD traffic.
        Assert.Equal(8192 + 65536 + 65536, dev.Stats.WriteBytes);
        Assert.True(dev.Stats.FlushOperations >= 1);
        await c.SendRequestAsync(NbdCommand.Read, 7, 0, 4096);
        await c.ReadStructuredReadAsync(7, 0, 4096);
        Assert.Equal(4096, dev.Stats.ReadBytes);
    }

    [Fact]
    public async Task Errors_eperm_einval_enospc()
    {
        await using var s = await NbdTestServer.StartAsync();
        await s.ExportFileAsync("ro", s.Dir.PatternFile("ro.raw", Size), writable: false);
        await s.ExportFileAsync("rw", s.Dir.PatternFile("rw.raw", Size), writable: true);
        var (ro, _) = await RawNbdClient.OpenAsync(s.Socket, "ro");
        await using var _ro = ro;
        await ro.SendRequestAsync(NbdCommand.Write, 1, 0, 4, data: [1, 2, 3, 4]);
        Assert.Equal(NbdError.EPERM, (await ro.ReadReplyAsync()).Error);
        await ro.SendRequestAsync(NbdCommand.WriteZeroes, 2, 0, 4);
        Assert.Equal(NbdError.EPERM, (await ro.ReadReplyAsync()).Error);
        await ro.SendRequestAsync(NbdCommand.Trim, 3, 0, 4);
        Assert.Equal(NbdError.EPERM, (await ro.ReadReplyAsync()).Error);

        var (rw, _) = await RawNbdClient.OpenAsync(s.Socket, "rw", meta: false);
        await using var _rw = rw;
        await rw.SendRequestAsync(NbdCommand.Read, 10, Size - 10, 20);
        var r = await rw.ReadReplyAsync();
        Assert.Equal(NbdError.EINVAL, r.Error);
        Assert.Equal(NbdChunkType.Error, r.Chunk!.Value.Type);
        await rw.SendRequestAsync(NbdCommand.Write, 11, Size - 2, 4, data: [1, 2, 3, 4]);
        Assert.Equal(NbdError.ENOSPC, (await rw.ReadReplyAsync()).Error);
        await rw.SendRequestAsync(NbdCommand.WriteZeroes, 12, Size, 1);
        Assert.Equal(NbdError.ENOSPC, (await rw.ReadReplyAsync()).Error);
        await rw.SendRequestAsync(NbdCommand.Trim, 13, ulong.MaxValue - 1, 4);
        Assert.Equal(NbdError.EINVAL, (await rw.ReadReplyAsync()).Error);
        await rw.SendRequestAsync((NbdCommand)99, 14, 0, 0);
        Assert.Equal(NbdError.EINVAL, (await rw.ReadReplyAsync()).Error);
        await rw.SendRequestAsync(NbdCommand.Flush, 15, 0, 0, (NbdCommandFlags)0x4000);
        Assert.Equal(NbdError.EINVAL, (await rw.ReadReplyAsync()).Error);
        await rw.SendRequestAsync(NbdCommand.Write, 16, 0, 4, NbdCommandFlags.ReqOne, [1, 2, 3, 4]);
        Assert.Equal(NbdError.EINVAL, (await rw.ReadReplyAsync()).Error);
        // Block status without a negotiated context.
        await rw.SendRequestAsync(NbdCommand.BlockStatus, 17, 0, 4096);
        Assert.Equal(NbdError.EINVAL, (await rw.ReadReplyAsync()).Error);
        // The connection is still good.
        await rw.SendRequestAsync(NbdCommand.Read, 18, 0, 4);
        Assert.Equal(File.ReadAllBytes(s.Dir.File("rw.raw"))[..4], (await rw.ReadStructuredReadAsync(18, 0, 4)).Data);
    }

    [Fact]
    public async Task Oversized_request_or_bad_magic_closes_only_that_connection()
    {
        await using var s = await NbdTestServer.StartAsync();
        string path = s.Dir.PatternFile("d.raw", Size);
        await s.ExportFileAsync("d", path, writable: true);
        var (good, _) = await RawNbdClient.OpenAsync(s.Socket, "d");
        await using var _g = good;

        var (big, _) = await RawNbdClient.OpenAsync(s.Socket, "d");
        await using (big)
        {
            await big.SendRequestAsync(NbdCommand.Read, 1, 0, (32 << 20) + 1);
            Assert.True(await big.IsClosedAsync());
        }

        var (bad, _) = await RawNbdClient.OpenAsync(s.Socket, "d");
        await using (bad)
        {
            var junk = new byte[RequestHeader.Size];
            junk[0] = 0x12;
            await bad.SendAsync(junk);
            Assert.True(await bad.IsClosedAsync());
        }

        await good.SendRequestAsync(NbdCommand.Read, 9, 100, 100);
        Assert.Equal(File.ReadAllBytes(path)[100..200], (await good.ReadStructuredReadAsync(9, 100, 100)).Data);
    }

    [Fact]
    public async Task Acknowledged_writes_survive_a_vanished_client()
    {
        await using var s = await NbdTestServer.StartAsync();
        string path = s.Dir.PatternFile("d.raw", Size);
        await s.ExportFileAsync("d", path, writable: true);
        var (c, _) = await RawNbdClient.OpenAsync(s.Socket, "d");
        var acked = new List<int>();
        for (int i = 0; i < 16; i++)
            await c.SendRequestAsync(NbdCommand.Write, (ulong)i, (ulong)(i * 4096), 4096, data: Enumerable.Repeat((byte)(i + 1), 4096).ToArray());
        for (int i = 0; i < 8; i++)
            acked.Add((int)(await c.ReadReplyAsync()).Cookie);
        // More requests, one of them cut in the middle of its payload, then the client is gone.
        await c.SendRequestAsync(NbdCommand.Write, 100, 100 * 4096, 4096, data: new byte[100]);
        await c.DisposeAsync();

        // The server notices the client is gone and ends the session; wait for that, not for a fixed time.
        for (var deadline = DateTime.UtcNow.AddSeconds(15); s.Server.ConnectionCount != 0 && DateTime.UtcNow < deadline;)
            await Task.Delay(10);
        var disk = File.ReadAllBytes(path);
        foreach (int i in acked)
            Assert.All(disk.AsSpan(i * 4096, 4096).ToArray(), b => Assert.Equal(i + 1, b));
        Assert.Equal(0, s.Server.ConnectionCount);
    }
}
