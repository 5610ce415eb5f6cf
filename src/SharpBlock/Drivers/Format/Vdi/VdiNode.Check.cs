using System.Globalization;

namespace SharpBlock.Drivers.Format.Vdi;

/// <summary>qemu-img check for VDI: every allocated entry names a block of its own, and the count matches the header.</summary>
public sealed partial class VdiNode : ICheckableImage
{
    public async ValueTask<ImageCheckResult> CheckAsync(ImageCheckMode mode, Action<string>? report, CancellationToken cancellationToken = default)
    {
        // QEMU's VDI check repairs nothing; qemu-img then says the format does not support checks.
        if (mode != ImageCheckMode.None)
            throw new Errors.BlockException(Errors.Errno.EOPNOTSUPP, "This image format does not support checks");
        var result = new ImageCheckResult();
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            uint blocks = _header.BlocksInImage;
            // Which map entry owns each data block; one bit per block would do, but the report names the first owner.
            var owner = new uint[blocks];
            Array.Fill(owner, VdiLayout.Unallocated);
            uint allocated = 0;
            for (uint block = 0; block < blocks; block++)
            {
                uint entry = Entry(block);
                if (!VdiLayout.IsAllocated(entry))
                    continue;
                if (entry >= blocks)
                {
                    report?.Invoke(string.Create(CultureInfo.InvariantCulture, $"ERROR: block index {block} too large, is {entry}"));
                    result.Corruptions++;
                    continue;
                }

                allocated++;
                if (!VdiLayout.IsAllocated(owner[entry]))
                {
                    owner[entry] = entry;
                }
                else
                {
                    // QEMU's wording names the entry twice; kept so the two tools print the same line.
                    report?.Invoke(string.Create(CultureInfo.InvariantCulture, $"ERROR: block index {owner[entry]} also used by {entry}"));
                    result.Corruptions++;
                }
            }

            if (allocated != _header.BlocksAllocated)
            {
                report?.Invoke(string.Create(CultureInfo.InvariantCulture, $"ERROR: allocated blocks mismatch, is {allocated}, should be {_header.BlocksAllocated}"));
                result.Corruptions++;
            }
        }
        finally
        {
            _lock.Release();
        }

        return result;
    }
}
