using System.Globalization;

namespace SharpBlock.Options;

/// <summary>Sizes as people type them: 512, 64k, 1.5G (binary units, as qemu-img reads them).</summary>
public static class SizeParser
{
    public static bool TryParse(string text, out ulong bytes, char defaultSuffix = 'B')
    {
        bytes = 0;
        text = text.Trim();
        if (text.Length == 0)
            return false;
        char suffix = char.ToUpperInvariant(text[^1]);
        string number = text;
        if (char.IsAsciiLetter(suffix))
            number = text[..^1];
        else
            suffix = defaultSuffix;
        int shift = suffix switch
        {
            'B' => 0,
            'K' => 10,
            'M' => 20,
            'G' => 30,
            'T' => 40,
            'P' => 50,
            'E' => 60,
            _ => -1,
        };
        if (shift < 0 || number.Length == 0 || number[0] == '-' || number[0] == '+')
            return false;
        if (ulong.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out ulong whole))
        {
            if (shift > 0 && whole > (ulong.MaxValue >> shift))
                return false;
            bytes = whole << shift;
            return true;
        }

        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double d))
            return false;
        double v = d * Math.Pow(2, shift);
        if (v >= 18446744073709551615.0)
            return false;
        bytes = (ulong)v;
        return true;
    }
}
