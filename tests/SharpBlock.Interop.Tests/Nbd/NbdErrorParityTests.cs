using System.Diagnostics;
using SharpBlock.Nbd.Protocol;
using SharpBlock.Nbd.Tests;
using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Nbd;

/// <summary>
/// The same odd requests sent to qemu-nbd and to our server over the wire: the errno each answers must
/// match, so clients written against QEMU see the same failures from us.
/// </summary>
public class NbdErrorParityTests
{
    private const int Size = 1 << 20;

    private static readonly (string Name, NbdCommand Cmd, NbdCommandFlags Flags, ulong Offset, uint Length)[] Cases =
    [
        ("read past end", NbdCommand.Read, 0, Size - 512, 1024),
        ("read offset past end", NbdCommand.Read, 0, Size + 4096, 512),
        ("write past end", NbdCommand.Write, 0, Size - 2, 4),
        ("zeroes past end", NbdCommand.WriteZeroes, 0, Size, 4096),
        ("trim past end", NbdCommand.Trim, 0, Size - 512, 1024),
        ("cache past end", NbdCommand.Cache, 0, Size - 512, 1024),
        ("block status past end", NbdCommand.BlockStatus, 0, Size, 512),
        ("block status length 0", NbdCommand.BlockStatus, 0, 0, 0),
        ("unknown command", (NbdCommand)77, 0, 0, 0),
        ("flush with unknown flag", NbdCommand.Flush, (NbdCommandFlags)0x100, 0, 0),
        ("read with FAST_ZERO", NbdCommand.Read, NbdCommandFlags.FastZero, 0, 512),
        ("write with REQ_ONE", NbdCommand.Write, NbdCommandFlags.ReqOne, 0, 4),
        ("read inside", NbdCommand.Read, 0, 4096, 512),
        ("read length 0", NbdCommand.Read, 0, 4096, 0),
        ("trim length 0", NbdCommand.Trim, 0, 4096, 0),
        ("cache length 0", NbdCommand.Cache, 0, 4096, 0),
        ("write inside", NbdCommand.Write, 0, 4096, 4),
        ("trim inside", NbdCommand.Trim, 0, 0, 4096),
        ("zeroes inside", NbdCommand.WriteZeroes, 0, 0, 4096),
        ("write inside with FUA", NbdCommand.Write, NbdCommandFlags.Fua, 4096, 4),
        ("zeroes with NO_HOLE", NbdCommand.WriteZeroes, NbdCommandFlags.NoHole, 8192, 4096),
        ("block status", NbdCommand.BlockStatus, NbdCommandFlags.ReqOne, 0, 65536),
    ];

    /// <summary>
    /// Where we follow the NBD spec and qemu-nbd 7.2 does not: a write past the end is ENOSPC ("SHOULD
    /// return ENOSPC if it receives a write request including one or more sectors beyond the size of the
    /// device"), and any write to a read-only export is EPERM, whatever else is wrong with it.
    /// </summary>
    private static readonly Dictionary<(bool Writable, string Case), (uint Ours, uint Qemu)> Deliberate = new()
    {
        [(true, "write past end")] = (NbdError.ENOSPC, NbdError.EINVAL),
        [(true, "zeroes past end")] = (NbdError.ENOSPC, NbdError.EINVAL),
        [(false, "write past end")] = (NbdError.EPERM, NbdError.EINVAL),
        [(false, "zeroes past end")] = (NbdError.EPERM, NbdError.EINVAL),
        [(false, "trim past end")] = (NbdError.EPERM, NbdError.EINVAL),
        [(false, "write inside")] = (NbdError.EPERM, NbdError.EINVAL),
        [(false, "trim length 0")] = (NbdError.EPERM, NbdError.EINVAL),
        [(false, "trim inside")] = (NbdError.EPERM, NbdError.EINVAL),
        [(false, "zeroes inside")] = (NbdError.EPERM, NbdError.EINVAL),
        [(false, "write inside with FUA")] = (NbdError.EPERM, NbdError.EINVAL),
        [(false, "zeroes with NO_HOLE")] = (NbdError.EPERM, NbdError.EINVAL),
    };

    private static async Task<List<uint>> RunAsync(string socket, string export)
    {
        var (c, _) = await RawNbdClient.OpenAsync(socket, export);
        await using var _c = c;
        var errors = new List<uint>();
        ulong cookie = 1;
        foreach (var t in Cases)
        {
            byte[]? data = t.Cmd == NbdCommand.Write ? new byte[t.Length] : null;
            await c.SendRequestAsync(t.Cmd, cookie, t.Offset, t.Length, t.Flags, data);
            while (true)
            {
                var r = await c.ReadReplyAsync();
                Assert.Equal(cookie, r.Cookie);
                if (r.Chunk is { } ch && !ch.IsDone && !ch.IsError)
                    continue;
                errors.Add(r.Error);
                if (r.Chunk is { } ch2 && !ch2.IsDone)
                    continue;
                break;
            }

            cookie++;
        }

        return errors;
    }

    private static async Task<List<uint>> QemuAsync(TempDir dir, bool readOnly)
    {
        string path = dir.PatternFile("q.raw", Size);
        string sock = dir.File("q.sock");
        var psi = new ProcessStartInfo(Tools.Require("qemu-nbd")) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-k", sock, "-f", "raw", "-t", "--shared=4", "-x", "d", path })
            psi.ArgumentList.Add(a);
        if (readOnly)
            psi.ArgumentList.Add("-r");
        using var p = Process.Start(psi)!;
        try
        {
            await SocketWait.ForListenerAsync(sock);
            return await RunAsync(sock, "d");
        }
        finally
        {
            p.Kill();
            await p.WaitForExitAsync();
            File.Delete(sock);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Same_errors_as_qemu_nbd(bool writable)
    {
        await using var ours = await NbdTestServer.StartAsync();
        await ours.ExportFileAsync("d", ours.Dir.PatternFile("d.raw", Size), writable);
        var mine = await RunAsync(ours.Socket, "d");
        var theirs = await QemuAsync(ours.Dir, readOnly: !writable);
        var diffs = Cases.Select((c, i) => (c.Name, Ours: mine[i], Qemu: theirs[i]))
            .Where(x => Deliberate.TryGetValue((writable, x.Name), out var d) ? d != (x.Ours, x.Qemu) : x.Ours != x.Qemu)
            .ToList();
        Assert.True(diffs.Count == 0, string.Join("\n", diffs.Select(d => $"{d.Name}: ours {d.Ours}, qemu-nbd {d.Qemu}")));
    }
}
