using System.Globalization;
using SharpBlock.Copy;

namespace SharpBlock.Cli.Img;

/// <summary>
/// qemu-img's -p: on a terminal a line redrawn in place, "    (42.00/100%)"; when output goes to a file or
/// pipe, one plain line per ten percent, so logs stay readable. Parallel workers report out of order, so
/// the figure only moves forward.
/// </summary>
internal sealed class ImgProgress : ICopyProgress
{
    private readonly bool _enabled;
    private readonly bool _terminal;
    private readonly Lock _lock = new();
    private int _last = -1;

    public ImgProgress(bool enabled)
    {
        _enabled = enabled;
        _terminal = !Console.IsOutputRedirected;
        Report(0, 1);
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
        int step = _terminal ? hundredths / 100 : hundredths / 1000;
        int lastStep = _terminal ? _last / 100 : _last / 1000;
        if (_last >= 0 && step == lastStep && hundredths != 10000)
            return;
        if (hundredths == _last)
            return;
        _last = hundredths;
        string text = string.Format(CultureInfo.InvariantCulture, "    ({0:0.00}/100%)", hundredths / 100.0);
        Console.Out.Write(_terminal ? text + "\r" : text + "\n");
        Console.Out.Flush();
    }

    public void Done()
    {
        if (!_enabled)
            return;
        Report(1, 1);
        if (_terminal)
            Console.Out.Write("\n");
    }
}
