namespace SharpBlock.Copy;

/// <summary>Where a long copy reports how far it got (the image tool's -p bar, a job's progress).</summary>
public interface ICopyProgress
{
    /// <summary>Bytes done out of total; workers report out of order, so a display keeps the largest figure.</summary>
    void Report(long done, long total);

    /// <summary>The copy finished.</summary>
    void Done();
}
