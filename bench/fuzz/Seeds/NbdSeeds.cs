using System.Buffers.Binary;
using System.Text;
using SharpBlock.Fuzz.Targets;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Fuzz.Seeds;

/// <summary>
/// The NBD seed corpus, made from the protocol's own structs so a seed is always a well-formed client:
/// each one a different route through negotiation, then a few requests of every kind.
/// </summary>
public static class NbdSeeds
{
    private const string Export = NbdServerTarget.ExportName;

    public static IEnumerable<(string Name, byte[] Bytes)> All()
    {
        yield return ("go-simple-replies", Session(s =>
        {
            s.Option(NbdOption.Go, InfoRequest(Export));
            Requests(s);
        }));
        yield return ("structured-meta-go", Session(s =>
        {
            s.Option(NbdOption.StructuredReply, []);
            s.Option(NbdOption.ListMetaContext, MetaContext(Export));
            s.Option(NbdOption.SetMetaContext, MetaContext(Export, NbdConstants.BaseAllocation));
            s.Option(NbdOption.Info, InfoRequest(Export, NbdInfoType.BlockSize, NbdInfoType.Description, NbdInfoType.Name));
            s.Option(NbdOption.Go, InfoRequest(Export, NbdInfoType.BlockSize));
            Requests(s);
            s.Request(NbdCommand.BlockStatus, NbdCommandFlags.ReqOne, 0, 65536);
        }));
        yield return ("list-abort", Session(s =>
        {
            s.Option(NbdOption.List, []);
            s.Option(NbdOption.Info, InfoRequest("nosuch"));
            s.Option((NbdOption)99, [1, 2, 3]);
            s.Option(NbdOption.Abort, []);
        }));
        yield return ("export-name", Session(s =>
        {
            s.Option(NbdOption.ExportName, Encoding.UTF8.GetBytes(Export));
            s.Request(NbdCommand.Read, NbdCommandFlags.None, 512, 512);
            s.Request(NbdCommand.Disc, NbdCommandFlags.None, 0, 0);
        }, NbdClientFlags.FixedNewstyle));
    }

    private static void Requests(Writer s)
    {
        s.Request(NbdCommand.Read, NbdCommandFlags.None, 0, 4096);
        s.Request(NbdCommand.Write, NbdCommandFlags.Fua, 8192, 16, new byte[16]);
        s.Request(NbdCommand.WriteZeroes, NbdCommandFlags.NoHole, 4096, 4096);
        s.Request(NbdCommand.Trim, NbdCommandFlags.None, 0, 512);
        s.Request(NbdCommand.Flush, NbdCommandFlags.None, 0, 0);
        s.Request(NbdCommand.Read, NbdCommandFlags.Df, 65536, 1024);
        s.Request(NbdCommand.Disc, NbdCommandFlags.None, 0, 0);
    }

    private static byte[] Session(Action<Writer> body, NbdClientFlags flags = NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes)
    {
        var w = new Writer();
        Span<byte> f = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(f, (uint)flags);
        w.Bytes.Write(f);
        body(w);
        return w.Bytes.ToArray();
    }

    public static byte[] InfoRequest(string export, params NbdInfoType[] infos) => NbdOptionPayloads.Info(export, infos);

    public static byte[] MetaContext(string export, params string[] queries) => NbdOptionPayloads.MetaContext(export, queries);

    private sealed class Writer
    {
        private ulong _cookie;

        public MemoryStream Bytes { get; } = new();

        public void Option(NbdOption option, byte[] data)
        {
            var b = new byte[OptionHeader.Size + data.Length];
            new OptionHeader(NbdConstants.IHaveOpt, option, (uint)data.Length).Write(b);
            data.CopyTo(b, OptionHeader.Size);
            Bytes.Write(b);
        }

        public void Request(NbdCommand command, NbdCommandFlags flags, ulong offset, uint length, byte[]? data = null)
        {
            var b = new byte[RequestHeader.Size];
            new RequestHeader(NbdConstants.RequestMagic, flags, command, ++_cookie, offset, length).Write(b);
            Bytes.Write(b);
            if (data != null)
                Bytes.Write(data);
        }
    }
}
