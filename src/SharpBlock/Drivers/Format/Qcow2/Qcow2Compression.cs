using System.IO.Compression;
using System.Runtime.InteropServices;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>
/// Compressed clusters are raw deflate streams. QEMU inflates them with a 4 KiB window (windowBits -12), so
/// we must compress with that window too: the runtime's DeflateStream uses 32 KiB and its output could
/// reference data QEMU cannot reach. Hence zlib's deflateInit2 directly; inflating any window size is fine
/// with DeflateStream.
/// </summary>
internal static partial class Qcow2Compression
{
    private const int ZFinish = 4;
    private const int ZStreamEnd = 1;
    private const int ZDeflated = 8;
    private const int WindowBits = -12;

    /// <summary>struct z_stream on 64-bit Linux (112 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct ZStream
    {
        public nint NextIn;
        public uint AvailIn;
        public nuint TotalIn;
        public nint NextOut;
        public uint AvailOut;
        public nuint TotalOut;
        public nint Msg;
        public nint State;
        public nint ZAlloc;
        public nint ZFree;
        public nint Opaque;
        public int DataType;
        public nuint Adler;
        public nuint Reserved;
    }

    [LibraryImport("libz.so.1", EntryPoint = "deflateInit2_", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int DeflateInit2(ref ZStream strm, int level, int method, int windowBits, int memLevel, int strategy, string version, int streamSize);

    [LibraryImport("libz.so.1", EntryPoint = "deflate")]
    private static partial int Deflate(ref ZStream strm, int flush);

    [LibraryImport("libz.so.1", EntryPoint = "deflateEnd")]
    private static partial int DeflateEnd(ref ZStream strm);

    /// <summary>Compresses one cluster; returns the compressed length, or -1 when it would not be smaller.</summary>
    public static unsafe int Compress(ReadOnlySpan<byte> input, Span<byte> output)
    {
        var z = default(ZStream);
        if (DeflateInit2(ref z, 6, ZDeflated, WindowBits, 9, 0, "1.2.11", sizeof(ZStream)) != 0)
            return -1;
        try
        {
            fixed (byte* inp = input)
            fixed (byte* outp = output)
            {
                z.NextIn = (nint)inp;
                z.AvailIn = (uint)input.Length;
                z.NextOut = (nint)outp;
                z.AvailOut = (uint)output.Length;
                int rc = Deflate(ref z, ZFinish);
                if (rc != ZStreamEnd)
                    return -1;
                return (int)z.TotalOut;
            }
        }
        finally
        {
            DeflateEnd(ref z);
        }
    }

    /// <summary>Inflates compressed data into exactly one cluster; false when the data is not a valid stream.</summary>
    public static bool Decompress(byte[] input, int length, Span<byte> cluster)
    {
        try
        {
            using var ms = new MemoryStream(input, 0, length, writable: false);
            using var ds = new DeflateStream(ms, CompressionMode.Decompress);
            int done = 0;
            while (done < cluster.Length)
            {
                int n = ds.Read(cluster[done..]);
                if (n <= 0)
                    break;
                done += n;
            }

            return done == cluster.Length;
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }
}
