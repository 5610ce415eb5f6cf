using System;
using System.Collections.Generic;
using System.Text;

namespace SharpBlock.SchemaGen;

/// <summary>
/// Reads the project's QAPI files: JSON objects with single-quoted strings and '#' comments.
/// Objects keep their key order, because member order is the order arguments are checked in.
/// </summary>
internal sealed class SchemaParser
{
    private readonly string _text;
    private readonly string _file;
    private int _pos;

    private SchemaParser(string text, string file)
    {
        _text = text;
        _file = file;
    }

    /// <summary>The file's definitions, each with the comment lines ('#' stripped) written right before it.</summary>
    public static List<KeyValuePair<List<KeyValuePair<string, object>>, List<string>>> ParseFile(string text, string file)
    {
        var p = new SchemaParser(text, file);
        var result = new List<KeyValuePair<List<KeyValuePair<string, object>>, List<string>>>();
        while (true)
        {
            var doc = new List<string>();
            p.SkipTrivia(doc);
            if (p._pos >= p._text.Length)
                return result;
            if (p.ParseValue() is not List<KeyValuePair<string, object>> obj)
                throw p.Error("a top-level definition must be an object");
            result.Add(new KeyValuePair<List<KeyValuePair<string, object>>, List<string>>(obj, doc));
        }
    }

    private Exception Error(string message)
    {
        int line = 1;
        for (int i = 0; i < _pos && i < _text.Length; i++)
        {
            if (_text[i] == '\n')
                line++;
        }

        return new FormatException(_file + "(" + line + "): " + message);
    }

    private void SkipTrivia(List<string>? doc = null)
    {
        while (_pos < _text.Length)
        {
            char c = _text[_pos];
            if (c == '#')
            {
                int start = _pos + 1;
                while (_pos < _text.Length && _text[_pos] != '\n')
                    _pos++;
                doc?.Add(_text.Substring(start, _pos - start).Trim());
            }
            else if (char.IsWhiteSpace(c))
            {
                _pos++;
            }
            else
            {
                return;
            }
        }
    }

    private object ParseValue()
    {
        SkipTrivia();
        if (_pos >= _text.Length)
            throw Error("unexpected end of file");
        char c = _text[_pos];
        switch (c)
        {
            case '{':
                return ParseObject();
            case '[':
                return ParseArray();
            case '\'':
            case '"':
                return ParseString();
            default:
                if (Match("true"))
                    return true;
                if (Match("false"))
                    return false;
                throw Error("unexpected character '" + c + "'");
        }
    }

    /// <summary>The next character, or '\0' at the end, so a truncated file is an error naming its line, not a crash.</summary>
    private char Peek() => _pos < _text.Length ? _text[_pos] : '\0';

    private bool Match(string word)
    {
        if (string.CompareOrdinal(_text, _pos, word, 0, word.Length) != 0)
            return false;
        _pos += word.Length;
        return true;
    }

    private void Expect(char c)
    {
        SkipTrivia();
        if (_pos >= _text.Length || _text[_pos] != c)
            throw Error("expected '" + c + "'");
        _pos++;
    }

    private string ParseString()
    {
        char quote = _text[_pos++];
        var sb = new StringBuilder();
        while (_pos < _text.Length && _text[_pos] != quote)
            sb.Append(_text[_pos++]);
        if (_pos >= _text.Length)
            throw Error("unterminated string");
        _pos++;
        return sb.ToString();
    }

    private List<KeyValuePair<string, object>> ParseObject()
    {
        Expect('{');
        var list = new List<KeyValuePair<string, object>>();
        SkipTrivia();
        if (Peek() == '}')
        {
            _pos++;
            return list;
        }

        while (true)
        {
            SkipTrivia();
            if (ParseValue() is not string key)
                throw Error("object keys must be strings");
            Expect(':');
            list.Add(new KeyValuePair<string, object>(key, ParseValue()));
            SkipTrivia();
            if (Peek() == ',')
            {
                _pos++;
                continue;
            }

            Expect('}');
            return list;
        }
    }

    private List<object> ParseArray()
    {
        Expect('[');
        var list = new List<object>();
        SkipTrivia();
        if (Peek() == ']')
        {
            _pos++;
            return list;
        }

        while (true)
        {
            list.Add(ParseValue());
            SkipTrivia();
            if (Peek() == ',')
            {
                _pos++;
                continue;
            }

            Expect(']');
            return list;
        }
    }
}
