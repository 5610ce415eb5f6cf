using System.Globalization;
using SharpBlock.Copy;

namespace SharpBlock.Cli.Img;

/// <summary>
/// qemu-img's -p: "    (42.00/100%)" redrawn in place with a carriage return at every whole percent, on a
/// terminal and on a pipe alike (as qemu-img does), and a newline at the end. Parallel workers report out of
/// order, so the figure only moves forward.
/// </summary>
internal sealed class ImgProgress : ICopyProgress
{
    private readonly bool _enabled;
    private readonly Lock _lock = new();
    private int _last = -1;

    /// <param name="enabled">-p given (and not -q).</param>
    /// <param name="startTwice">Print the 0% line twice, as qemu-img commit does (its job reports once more at the start).</param>
    public ImgProgress(bool enabled, bool startTwice = false)
    {
        _enabled = enabled;
        Report(0, 1);
        if (startTwice)
            Print(0);
    }

    public void Report(long done, long total)
    {
        if (!_enabled)
            return;
        int hundredths = (int)(Math.Min(done, total) * 10000 / Math.Max(1, total));
        lock (_lock)
            Show(hundredths);
    }

    private void Show(int hundredths)
    {
        if (hundredths < _last)
            return;
        if (_last >= 0 && hundredths / 100 == _last / 100 && hundredths != 10000)
            return;
        if (hundredths == _last)
            return;
        _last = hundredths;
        Print(hundredths);
    }

    private void Print(int hundredths)
    {
        if (!_enabled)
            return;
        Console.Out.Write(string.Format(CultureInfo.InvariantCulture, "    ({0:0.00}/100%)\r", hundredths / 100.0));
        Console.Out.Flush();
    }

    /// <summary>The end of a copy as convert and rebase show it: 100% (printed once more) and the line ended.</summary>
    public void Done()
    {
        Complete(again: true);
        End();
    }

    /// <summary>Shows 100%; <paramref name="again"/> prints it even when the last report already did.</summary>
    public void Complete(bool again)
    {
        if (!_enabled)
            return;
        lock (_lock)
        {
            bool shown = _last == 10000;
            Show(10000);
            if (again && shown)
                Print(10000);
        }
    }

    /// <summary>Ends the progress line (compare ends it after its verdict, as qemu-img does).</summary>
    public void End()
    {
        if (_enabled)
            Console.Out.Write("\n");
    }
}
