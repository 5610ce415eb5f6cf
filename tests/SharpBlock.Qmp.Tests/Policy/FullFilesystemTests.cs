using SharpBlock.Testing;
using Xunit.Abstractions;

namespace SharpBlock.Qmp.Tests.Policy;

/// <summary>werror=enospc against a file system that really fills up: a 2 MiB tmpfs the test mounts.</summary>
public class FullFilesystemTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Enospc_stops_on_a_full_filesystem_and_cont_loses_no_acknowledged_write()
    {
        var dir = new TempDir();
        string mnt = dir.File("mnt");
        Directory.CreateDirectory(mnt);
        (await Tools.RunAsync("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt)).Ok();
        try
        {
            await using var h = await QmpHarness.StartAsync(dir);
            // Ballast takes half the space; deleting it is how the "administrator" frees space later.
            string ballast = Path.Combine(mnt, "ballast");
            File.WriteAllBytes(ballast, new byte[1 << 20]);
            string img = Path.Combine(mnt, "disk.img");
            using (var f = File.Create(img))
                f.SetLength(4 << 20);
            var dev = await h.AddRawAsync("d0", img, ", \"werror\": \"enospc\"");

            const int Chunk = 256 << 10;
            var written = new List<(long Offset, byte[] Data)>();
            int stops = 0;
            for (int i = 0; i < 6; i++)
            {
                var data = new byte[Chunk];
                new Random(100 + i).NextBytes(data);
                var write = dev.WriteAsync((long)i * Chunk, data).AsTask();
                var deadline = DateTime.UtcNow.AddSeconds(10);
                while (!write.IsCompleted && !dev.IsStopped && DateTime.UtcNow < deadline)
                    await Task.Delay(5);
                if (!write.IsCompleted)
                {
                    // Held, not failed: the device stopped and says why, on the wire and in query-block.
                    stops++;
                    var ev = await h.Client.WaitEventAsync("BLOCK_IO_ERROR");
                    var d = ev.GetProperty("data");
                    Assert.Equal("stop", d.GetProperty("action").GetString());
                    Assert.Equal("write", d.GetProperty("operation").GetString());
                    Assert.True(d.GetProperty("nospace").GetBoolean());
                    Assert.Equal("nospace", (await h.QueryDeviceAsync("d0")).GetProperty("io-status").GetString());
                    Assert.True(dev.IsStopped);
                    output.WriteLine($"write {i} at {i * Chunk} held on ENOSPC after {written.Count} acknowledged writes");
                    File.Delete(ballast);
                    await h.Client.ReturnAsync("cont");
                    await write.WaitAsync(TimeSpan.FromSeconds(10));
                    Assert.Equal("ok", (await h.QueryDeviceAsync("d0")).GetProperty("io-status").GetString());
                }

                written.Add(((long)i * Chunk, data));
            }

            Assert.Equal(1, stops);
            await dev.FlushAsync();
            byte[] disk = File.ReadAllBytes(img);
            foreach (var (offset, data) in written)
                Assert.True(data.AsSpan().SequenceEqual(disk.AsSpan((int)offset, data.Length)), $"acknowledged write at {offset} lost");
        }
        finally
        {
            await Tools.RunAsync("umount", mnt);
            dir.Dispose();
        }
    }
}
