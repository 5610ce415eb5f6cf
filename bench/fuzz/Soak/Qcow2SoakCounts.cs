namespace SharpBlock.Fuzz.Soak;

/// <summary>What the soak run counts; each image lands in exactly one outcome, writes are counted by range.</summary>
public sealed class Qcow2SoakCounts
{
    public int Images;
    public int PreDamaged;
    public int OpenFailedTyped;
    public int NoGuestSpace;
    public int Exercised;
    public int Crashes;
    public int Hangs;
    public int WritesAcknowledged;
    public int WritesFailedTyped;
    public int MarkedCorrupt;
    public int ReopenFailedTyped;
    public int FlushFailedTyped;

    private readonly Dictionary<string, int> _flushReasons = [];

    /// <summary>Counts why flushes failed, by message with its numbers taken out, so the report can say.</summary>
    public void NoteFlushFailure(string message)
    {
        string key = System.Text.RegularExpressions.Regex.Replace(message, "0x[0-9a-f]+|[0-9]+", "N");
        _flushReasons[key] = _flushReasons.GetValueOrDefault(key) + 1;
    }

    private string FlushReasons()
    {
        var list = new List<KeyValuePair<string, int>>(_flushReasons);
        list.Sort((a, b) => b.Value.CompareTo(a.Value));
        var sb = new System.Text.StringBuilder();
        foreach (var (reason, n) in list.Take(5))
            sb.Append($"\n          {n,5} {reason}");
        return sb.ToString();
    }
    public int LostSameOpen;
    public int LostAfterReopen;
    public int LostOnCheckCleanImage;

    public string Report() =>
        $"""
        images                       {Images}
          open failed (typed error)  {OpenFailedTyped}
          opened, no guest bytes     {NoGuestSpace}
          opened and exercised       {Exercised}
          damaged before any write   {PreDamaged} (check found corruption, or check failed, on the mutated image)
        crashes (unexpected types)   {Crashes}
        hangs (over the time bound)  {Hangs}
        writes acknowledged          {WritesAcknowledged}
        writes failed (typed error)  {WritesFailedTyped}
        images marked corrupt        {MarkedCorrupt} (corrupt bit set by our writes; their reads are not judged)
        reopen failed (typed error)  {ReopenFailedTyped}
        flush failed (typed error)   {FlushFailedTyped} (the writes were not made durable; not judged after reopen){FlushReasons()}
        acknowledged writes lost     {LostSameOpen} in the same open, {LostAfterReopen} after flush+reopen
          of which on images check had called clean: {LostOnCheckCleanImage}
        """;
}
