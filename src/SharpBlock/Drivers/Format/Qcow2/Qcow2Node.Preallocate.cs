using System.Buffers;
using SharpBlock.Drivers.Creation;
using SharpBlock.Io;

namespace SharpBlock.Drivers.Format.Qcow2;

/// <summary>preallocation=metadata/falloc/full at create: every guest cluster gets its host cluster.</summary>
public sealed partial class Qcow2Node
{
    internal async ValueTask PreallocateAsync(Preallocation mode, CancellationToken ct)
    {
        long clusters = (_size + _clusterSize - 1) >> _clusterBits;
        long dataStart = long.MaxValue;
        long dataEnd = 0;
        await _meta.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            for (long first = 0; first < clusters; first += L2Entries)
            {
                long n = Math.Min(L2Entries, clusters - first);
                await GetWritableL2Async(first >> _l2Bits).ConfigureAwait(false);
                long host = await AllocateClustersLockedAsync(n).ConfigureAwait(false);
                await SetMappingLockedAsync(first, n, i => (ulong)(host + (i << _clusterBits)) | Qcow2Layout.OflagCopied, FreeReason.Other).ConfigureAwait(false);
                dataStart = Math.Min(dataStart, host);
                dataEnd = Math.Max(dataEnd, host + (n << _clusterBits));
            }

            await FlushMetadataLockedAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _meta.Release();
        }

        if (clusters == 0)
            return;
        switch (mode)
        {
            case Preallocation.Metadata:
                if (_file.Length < dataEnd)
                    await _file.TruncateAsync(dataEnd, ct).ConfigureAwait(false);
                break;
            case Preallocation.Falloc:
                await _file.WriteZeroesAsync(dataStart, dataEnd - dataStart, RequestFlags.None, ct).ConfigureAwait(false);
                break;
            case Preallocation.Full:
                {
                    byte[] zeros = ArrayPool<byte>.Shared.Rent(1 << 20);
                    try
                    {
                        Array.Clear(zeros);
                        for (long o = dataStart; o < dataEnd; o += zeros.Length)
                            await _file.WriteAsync(o, zeros.AsMemory(0, (int)Math.Min(zeros.Length, dataEnd - o)), RequestFlags.None, ct).ConfigureAwait(false);
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(zeros);
                    }

                    break;
                }
        }

        await _file.FlushAsync(ct).ConfigureAwait(false);
    }
}
