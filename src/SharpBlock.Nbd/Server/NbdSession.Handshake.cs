using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Server;

internal sealed partial class NbdSession
{
    private const NbdClientFlags KnownClientFlags = NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes;

    /// <summary>
    /// Runs the negotiation phase. Returns the export to serve, or null when the client aborted or left.
    /// Every malformed option is answered with an error reply and negotiation goes on, as the fixed
    /// newstyle protocol wants; only framing errors end the connection.
    /// </summary>
    private async ValueTask<NbdExport?> NegotiateAsync(CancellationToken ct)
    {
        var greeting = new byte[ServerGreeting.Size];
        new ServerGreeting(NbdConstants.NbdMagic, NbdConstants.IHaveOpt, NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes).Write(greeting);
        await SendAsync(greeting).ConfigureAwait(false);

        NbdClientFlags clientFlags;
        while (true)
        {
            var result = await _reader.ReadAsync(ct).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (NbdFrameReader.TryReadClientFlags(ref buffer, out clientFlags))
            {
                _reader.AdvanceTo(buffer.Start);
                break;
            }

            if (result.IsCompleted || result.IsCanceled)
                return null;
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }

        // The spec has the server drop a client that sets flags it did not offer.
        if ((clientFlags & ~KnownClientFlags) != 0)
            throw new NbdProtocolException(NbdProtocolError.UnknownClientFlags, "Client sent unknown flags");
        _noZeroes = (clientFlags & NbdClientFlags.NoZeroes) != 0;

        while (true)
        {
            OptionHeader header;
            byte[] data;
            while (true)
            {
                var result = await _reader.ReadAsync(ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                if (NbdFrameReader.TryReadOption(ref buffer, out header, out var payload))
                {
                    data = payload.ToArray();
                    _reader.AdvanceTo(buffer.Start);
                    break;
                }

                if (result.IsCompleted || result.IsCanceled)
                    return null;
                _reader.AdvanceTo(buffer.Start, buffer.End);
            }

            if (_writeFailed)
                return null;
            switch (header.Option)
            {
                case NbdOption.ExportName:
                    {
                        var export = _server.FindExport(Encoding.UTF8.GetString(data));
                        // This option has no error reply: an unknown name can only be answered by hanging up.
                        if (export == null)
                            return null;
                        int len = ExportInfo.Size + (_noZeroes ? 0 : NbdConstants.ExportNameZeroPad);
                        var reply = new byte[len];
                        new ExportInfo((ulong)export.Device.Length, TransmissionFlags(export)).Write(reply);
                        Export = export;
                        await SendAsync(reply).ConfigureAwait(false);
                        return export;
                    }

                case NbdOption.Abort:
                    await ReplyAsync(header.Option, NbdOptionReplyType.Ack).ConfigureAwait(false);
                    return null;

                case NbdOption.List:
                    if (data.Length != 0)
                    {
                        await ErrorAsync(header.Option, NbdOptionReplyType.ErrInvalid, "NBD_OPT_LIST takes no data").ConfigureAwait(false);
                        break;
                    }

                    foreach (var e in _server.Exports)
                    {
                        byte[] name = Encoding.UTF8.GetBytes(e.Name);
                        byte[] desc = Encoding.UTF8.GetBytes(e.Description ?? "");
                        var body = new byte[4 + name.Length + desc.Length];
                        BinaryPrimitives.WriteUInt32BigEndian(body, (uint)name.Length);
                        name.CopyTo(body, 4);
                        desc.CopyTo(body, 4 + name.Length);
                        await ReplyAsync(header.Option, NbdOptionReplyType.Server, body).ConfigureAwait(false);
                    }

                    await ReplyAsync(header.Option, NbdOptionReplyType.Ack).ConfigureAwait(false);
                    break;

                case NbdOption.Info or NbdOption.Go:
                    {
                        var export = await InfoAsync(header.Option, data).ConfigureAwait(false);
                        if (export != null && header.Option == NbdOption.Go)
                        {
                            // Contexts chosen for another export do not carry over to this one.
                            if (_metaContextExport != export.Name)
                                _contexts = [];
                            return export;
                        }

                        break;
                    }

                case NbdOption.StructuredReply:
                    if (data.Length != 0)
                        await ErrorAsync(header.Option, NbdOptionReplyType.ErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data").ConfigureAwait(false);
                    else if (_structured)
                        await ErrorAsync(header.Option, NbdOptionReplyType.ErrInvalid, "structured reply already negotiated").ConfigureAwait(false);
                    else
                    {
                        _structured = true;
                        await ReplyAsync(header.Option, NbdOptionReplyType.Ack).ConfigureAwait(false);
                    }

                    break;

                case NbdOption.ListMetaContext or NbdOption.SetMetaContext:
                    await MetaContextAsync(header.Option, data).ConfigureAwait(false);
                    break;

                case NbdOption.StartTls:
                    await ErrorAsync(header.Option, NbdOptionReplyType.ErrPolicy, "TLS not configured").ConfigureAwait(false);
                    break;

                default:
                    await ErrorAsync(header.Option, NbdOptionReplyType.ErrUnsup, $"Unsupported option {(uint)header.Option}").ConfigureAwait(false);
                    break;
            }
        }
    }

    private NbdTransmissionFlags TransmissionFlags(NbdExport export)
    {
        // Every connection reaches the same device and a flush flushes the device, so what one
        // connection flushed is stable for all of them: multi-conn is safe, read-only or not.
        // FUA is offered read-only too, as QEMU offers it (clients then see the same can_fua from both).
        var f = NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendCache
            | NbdTransmissionFlags.CanMultiConn | NbdTransmissionFlags.SendFua;
        if (export.Writable)
        {
            f |= NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.SendFastZero;
        }
        else
        {
            f |= NbdTransmissionFlags.ReadOnly;
        }

        if (_structured)
            f |= NbdTransmissionFlags.SendDf;
        return f;
    }

    /// <summary>NBD_OPT_INFO and NBD_OPT_GO: the export's facts, then ACK. Returns the export when it exists.</summary>
    private async ValueTask<NbdExport?> InfoAsync(NbdOption option, byte[] data)
    {
        // u32 name length, name, u16 count, count * u16 info type
        if (data.Length < 6)
        {
            await ErrorAsync(option, NbdOptionReplyType.ErrInvalid, "request too short").ConfigureAwait(false);
            return null;
        }

        uint nameLen = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLen > NbdConstants.MaxStringLength || 4 + nameLen + 2 > data.Length)
        {
            await ErrorAsync(option, NbdOptionReplyType.ErrInvalid, "export name length is invalid").ConfigureAwait(false);
            return null;
        }

        string name = Encoding.UTF8.GetString(data, 4, (int)nameLen);
        int pos = 4 + (int)nameLen;
        int count = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(pos));
        pos += 2;
        if (data.Length != pos + (2 * count))
        {
            await ErrorAsync(option, NbdOptionReplyType.ErrInvalid, "information request length is invalid").ConfigureAwait(false);
            return null;
        }

        bool wantName = false, wantDescription = false;
        for (int i = 0; i < count; i++)
        {
            var t = (NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(pos + (2 * i)));
            wantName |= t == NbdInfoType.Name;
            wantDescription |= t == NbdInfoType.Description;
        }

        var export = _server.FindExport(name);
        if (export == null)
        {
            await ErrorAsync(option, NbdOptionReplyType.ErrUnknown, $"export '{name}' not present").ConfigureAwait(false);
            return null;
        }

        if (wantName)
            await InfoStringAsync(option, NbdInfoType.Name, export.Name).ConfigureAwait(false);
        if (wantDescription && export.Description != null)
            await InfoStringAsync(option, NbdInfoType.Description, export.Description).ConfigureAwait(false);

        // Block sizes are sent unasked: they tell every client how large a request may be.
        var bs = new byte[2 + BlockSizeInfo.Size];
        BinaryPrimitives.WriteUInt16BigEndian(bs, (ushort)NbdInfoType.BlockSize);
        new BlockSizeInfo(1, 4096, NbdConstants.MaxPayload).Write(bs.AsSpan(2));
        await ReplyAsync(option, NbdOptionReplyType.Info, bs).ConfigureAwait(false);

        var ex = new byte[2 + ExportInfo.Size];
        BinaryPrimitives.WriteUInt16BigEndian(ex, (ushort)NbdInfoType.Export);
        new ExportInfo((ulong)export.Device.Length, TransmissionFlags(export)).Write(ex.AsSpan(2));
        await ReplyAsync(option, NbdOptionReplyType.Info, ex).ConfigureAwait(false);

        // A client told it may go is a user of the export from then on: a safe removal that follows the ACK
        // must see it.
        if (option == NbdOption.Go)
            Export = export;
        await ReplyAsync(option, NbdOptionReplyType.Ack).ConfigureAwait(false);
        return export;
    }

    private ValueTask InfoStringAsync(NbdOption option, NbdInfoType type, string value)
    {
        byte[] s = Encoding.UTF8.GetBytes(value);
        var body = new byte[2 + s.Length];
        BinaryPrimitives.WriteUInt16BigEndian(body, (ushort)type);
        s.CopyTo(body, 2);
        return ReplyAsync(option, NbdOptionReplyType.Info, body);
    }

    /// <summary>
    /// NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT over the export's contexts: base:allocation, and
    /// qemu:allocation-depth and qemu:dirty-bitmap:NAME where the export offers them.
    /// </summary>
    private async ValueTask MetaContextAsync(NbdOption option, byte[] data)
    {
        bool set = option == NbdOption.SetMetaContext;
        if (!_structured)
        {
            await ErrorAsync(option, NbdOptionReplyType.ErrInvalid, "request option when structured reply is not negotiated").ConfigureAwait(false);
            return;
        }

        // u32 export name length, name, u32 query count, count * (u32 length, query)
        var queries = new List<string>();
        string? name = null;
        int pos = 0;
        bool ok = data.Length >= 8;
        if (ok)
        {
            uint nameLen = BinaryPrimitives.ReadUInt32BigEndian(data);
            ok = nameLen <= NbdConstants.MaxStringLength && 4 + (long)nameLen + 4 <= data.Length;
            if (ok)
            {
                name = Encoding.UTF8.GetString(data, 4, (int)nameLen);
                pos = 4 + (int)nameLen;
                uint count = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos));
                pos += 4;
                for (uint i = 0; ok && i < count; i++)
                {
                    ok = pos + 4 <= data.Length;
                    if (!ok)
                        break;
                    uint qlen = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos));
                    pos += 4;
                    ok = qlen <= NbdConstants.MaxStringLength && pos + (long)qlen <= data.Length;
                    if (ok)
                    {
                        queries.Add(Encoding.UTF8.GetString(data, pos, (int)qlen));
                        pos += (int)qlen;
                    }
                }

                ok &= pos == data.Length;
            }
        }

        if (!ok || name == null)
        {
            await ErrorAsync(option, NbdOptionReplyType.ErrInvalid, "meta context request is malformed").ConfigureAwait(false);
            return;
        }

        var export = _server.FindExport(name);
        if (export == null)
        {
            await ErrorAsync(option, NbdOptionReplyType.ErrUnknown, $"export '{name}' not present").ConfigureAwait(false);
            return;
        }

        var chosen = new List<MetaContext>();
        foreach (var c in MetaContext.Of(export))
        {
            bool match = !set && queries.Count == 0;
            foreach (var q in queries)
                match |= c.Matches(q, list: !set);
            if (match)
                chosen.Add(c);
        }

        if (set)
        {
            _contexts = [.. chosen];
            _metaContextExport = name;
        }

        foreach (var c in chosen)
        {
            byte[] ctxName = Encoding.UTF8.GetBytes(c.Name);
            var body = new byte[4 + ctxName.Length];
            // A LIST gives no ids (the protocol says 0); a SET gives the ones BLOCK_STATUS will carry.
            BinaryPrimitives.WriteUInt32BigEndian(body, set ? c.Id : 0);
            ctxName.CopyTo(body, 4);
            await ReplyAsync(option, NbdOptionReplyType.MetaContext, body).ConfigureAwait(false);
        }

        await ReplyAsync(option, NbdOptionReplyType.Ack).ConfigureAwait(false);
    }

    private ValueTask ReplyAsync(NbdOption option, NbdOptionReplyType type, ReadOnlySpan<byte> body = default)
    {
        var msg = new byte[OptionReplyHeader.Size + body.Length];
        new OptionReplyHeader(NbdConstants.OptionReplyMagic, option, type, (uint)body.Length).Write(msg);
        body.CopyTo(msg.AsSpan(OptionReplyHeader.Size));
        return SendAsync(msg);
    }

    /// <summary>An error reply carries a message for people; clients print it.</summary>
    private ValueTask ErrorAsync(NbdOption option, NbdOptionReplyType type, string message) =>
        ReplyAsync(option, type, Encoding.UTF8.GetBytes(message));
}
