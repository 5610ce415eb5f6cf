using System.Buffers.Binary;
using System.Text;

namespace SharpBlock.Nbd.Protocol;

/// <summary>The data of the options a client sends that carry an export name and a list (proto.md's layouts).</summary>
public static class NbdOptionPayloads
{
    /// <summary>The data of NBD_OPT_INFO and NBD_OPT_GO: export name, then the info types asked for.</summary>
    public static byte[] Info(string export, params NbdInfoType[] infos)
    {
        byte[] name = Encoding.UTF8.GetBytes(export);
        var b = new byte[4 + name.Length + 2 + (2 * infos.Length)];
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)name.Length);
        name.CopyTo(b, 4);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4 + name.Length), (ushort)infos.Length);
        for (int i = 0; i < infos.Length; i++)
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6 + name.Length + (2 * i)), (ushort)infos[i]);
        return b;
    }

    /// <summary>The data of NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: export name, then the queries.</summary>
    public static byte[] MetaContext(string export, params string[] queries)
    {
        var ms = new MemoryStream();
        Span<byte> u32 = stackalloc byte[4];
        byte[] name = Encoding.UTF8.GetBytes(export);
        BinaryPrimitives.WriteUInt32BigEndian(u32, (uint)name.Length);
        ms.Write(u32);
        ms.Write(name);
        BinaryPrimitives.WriteUInt32BigEndian(u32, (uint)queries.Length);
        ms.Write(u32);
        foreach (string q in queries)
        {
            byte[] qb = Encoding.UTF8.GetBytes(q);
            BinaryPrimitives.WriteUInt32BigEndian(u32, (uint)qb.Length);
            ms.Write(u32);
            ms.Write(qb);
        }

        return ms.ToArray();
    }
}
