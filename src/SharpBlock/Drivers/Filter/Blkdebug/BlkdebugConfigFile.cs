using System.Globalization;
using SharpBlock.Errors;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Filter.Blkdebug;

/// <summary>
/// Reads a blkdebug rules file, the format QEMU's blkdebug 'config' option takes:
/// <code>
/// # comment
/// [inject-error]
/// event = "read_aio"
/// errno = "5"
/// sector = "0"
/// once = "on"
///
/// [set-state]
/// event = "write_aio"
/// state = "1"
/// new_state = "2"
/// </code>
/// Values are always quoted; a section ends where the next one starts.
/// </summary>
internal static class BlkdebugConfigFile
{
    public static void Load(string path, List<BlkdebugInjectRule> inject, List<BlkdebugStateRule> setState)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            var errno = BlockException.ErrnoOf(ex);
            throw new BlockException(errno, $"Could not read blkdebug config file: {BlockException.Describe(errno)}", ex);
        }

        Parse(text, path, inject, setState);
    }

    public static void Parse(string text, string path, List<BlkdebugInjectRule> inject, List<BlkdebugStateRule> setState)
    {
        string? section = null;
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        int sectionLine = 0;
        int lineNo = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNo++;
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
                continue;
            if (line[0] == '[')
            {
                if (line[^1] != ']')
                    throw Error(path, lineNo, "parse error");
                Flush(section, values, path, sectionLine, inject, setState);
                section = line[1..^1].Trim();
                if (section is not ("inject-error" or "set-state"))
                    throw Error(path, lineNo, $"there is no option group '{section}'");
                sectionLine = lineNo;
                continue;
            }

            int eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || section == null)
                throw Error(path, lineNo, "parse error");
            string key = line[..eq].Trim();
            string value = line[(eq + 1)..].Trim();
            if (value.Length < 2 || value[0] != '"' || value[^1] != '"')
                throw Error(path, lineNo, "parse error");
            values[key] = value[1..^1];
        }

        Flush(section, values, path, sectionLine, inject, setState);
    }

    private static void Flush(string? section, Dictionary<string, string> values, string path, int line,
        List<BlkdebugInjectRule> inject, List<BlkdebugStateRule> setState)
    {
        if (section == null)
            return;
        try
        {
            var e = ParseEvent(values);
            if (section == "inject-error")
            {
                CheckKeys(values, ["event", "state", "errno", "sector", "once", "immediately"]);
                inject.Add(new BlkdebugInjectRule
                {
                    Event = e,
                    State = (int)Number(values, "state", 0),
                    Errno = (Errno)(int)Number(values, "errno", (int)Errno.EIO),
                    Sector = Number(values, "sector", -1),
                    Once = Bool(values, "once"),
                    Immediately = Bool(values, "immediately"),
                });
            }
            else
            {
                CheckKeys(values, ["event", "state", "new_state"]);
                if (!values.ContainsKey("new_state"))
                    throw new FormatException("Parameter 'new_state' is missing");
                setState.Add(new BlkdebugStateRule
                {
                    Event = e,
                    State = (int)Number(values, "state", 0),
                    NewState = (int)Number(values, "new_state", 0),
                });
            }
        }
        catch (FormatException ex)
        {
            throw Error(path, line, ex.Message);
        }
        finally
        {
            values.Clear();
        }
    }

    private static BlkdebugEvent ParseEvent(Dictionary<string, string> values)
    {
        if (!values.TryGetValue("event", out var name))
            throw new FormatException("Missing event name for rule");
        if (!QapiEnums.TryParse(name, out BlkdebugEvent e))
            throw new FormatException($"Invalid event name \"{name}\"");
        return e;
    }

    private static void CheckKeys(Dictionary<string, string> values, string[] allowed)
    {
        foreach (var k in values.Keys)
        {
            if (Array.IndexOf(allowed, k) < 0)
                throw new FormatException($"Invalid parameter '{k}'");
        }
    }

    private static long Number(Dictionary<string, string> values, string key, long fallback)
    {
        if (!values.TryGetValue(key, out var s))
            return fallback;
        if (!long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v))
            throw new FormatException($"Parameter '{key}' expects a number");
        return v;
    }

    private static bool Bool(Dictionary<string, string> values, string key)
    {
        if (!values.TryGetValue(key, out var s))
            return false;
        return s switch
        {
            "on" or "yes" or "true" => true,
            "off" or "no" or "false" => false,
            _ => throw new FormatException($"Parameter '{key}' expects 'on' or 'off'"),
        };
    }

    private static BlockException Error(string path, int line, string what) =>
        new(Errno.EINVAL, $"{path}:{line.ToString(CultureInfo.InvariantCulture)}: {what}");
}
