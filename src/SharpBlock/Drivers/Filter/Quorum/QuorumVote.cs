namespace SharpBlock.Drivers.Filter.Quorum;

/// <summary>
/// The vote of a quorum request: children whose answers are equal form one version, and the version with the
/// most voters wins. A tie goes to the version whose first voter comes last among the children, which is the
/// order QEMU's vote list yields (new versions go to its head and the first strict maximum wins), so both
/// pick the same data when, say, two of four children agree and the other two agree differently.
/// </summary>
internal static class QuorumVote
{
    /// <summary>
    /// Votes over <paramref name="keys"/>, one fixed-size key per child (a content hash, an errno); children
    /// with <paramref name="voting"/> false do not vote. Returns the first child of the winning version and
    /// fills <paramref name="version"/> with each child's version (its first voter's index, -1 if not voting).
    /// </summary>
    public static int Winner(ReadOnlySpan<byte> keys, int keySize, ReadOnlySpan<bool> voting, Span<int> version, out int votes)
    {
        int n = voting.Length;
        Span<int> counts = n <= 32 ? stackalloc int[n] : new int[n];
        counts.Clear();
        for (int i = 0; i < n; i++)
        {
            version[i] = -1;
            if (!voting[i])
                continue;
            var key = keys.Slice(i * keySize, keySize);
            int first = i;
            for (int j = 0; j < i; j++)
            {
                if (version[j] == j && key.SequenceEqual(keys.Slice(j * keySize, keySize)))
                {
                    first = j;
                    break;
                }
            }

            version[i] = first;
            counts[first]++;
        }

        int winner = -1;
        votes = 0;
        for (int i = 0; i < n; i++)
        {
            // '>=' keeps the last version among equal counts: see the class comment.
            if (counts[i] > 0 && counts[i] >= votes)
            {
                winner = i;
                votes = counts[i];
            }
        }

        return winner;
    }
}
