using SharpBlock.Errors;
using SharpBlock.Options;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Tests.Schema;

public class KeyvalAndSizeTests
{
    [Fact]
    public void Keyval_builds_nested_objects_lists_and_escaped_commas()
    {
        using var doc = Keyval.ParseTree("driver=quorum,children.0=a,children.1=b,,c,vote-threshold=2");
        var root = doc.RootElement;
        Assert.Equal("quorum", root.GetProperty("driver").GetString());
        Assert.Equal(["a", "b,c"], root.GetProperty("children").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal("2", root.GetProperty("vote-threshold").GetString());
    }

    [Fact]
    public void Keyval_options_are_read_through_the_schema_with_conversions()
    {
        using var doc = Keyval.ParseTree("driver=raw,node-name=n,read-only=on,cache.direct=off,file.driver=file,file.filename=/x,,y");
        var o = QapiCodec.ReadBlockdevOptions(doc.RootElement, "", keyval: true);
        Assert.Equal(BlockdevDriver.Raw, o.Driver);
        Assert.True(o.ReadOnly);
        Assert.False(o.Cache!.Direct);
        Assert.Equal("/x,y", o.Raw!.File.Definition!.File!.Filename);
    }

    [Theory]
    [InlineData("driver=raw,node-name=n,read-only=maybe,file=f", "Parameter 'read-only' expects 'on' or 'off'")]
    [InlineData("driver=raw,node-name=n,file=f,bogus=1", "Parameter 'bogus' is unexpected")]
    [InlineData("driver=raw,node-name", "Expected '=' after parameter 'node-name'")]
    [InlineData("driver=raw,driver=qcow2", "Parameter 'driver' is set more than once")]
    public void Keyval_errors(string text, string message)
    {
        // Syntax mistakes are the parser's (a BlockException), values the schema refuses are the QMP reader's.
        var ex = Assert.ThrowsAny<Exception>(() =>
        {
            using var doc = Keyval.ParseTree(text);
            QapiCodec.ReadBlockdevOptions(doc.RootElement, "", keyval: true);
        });
        Assert.True(ex is QmpException or BlockException, ex.GetType().Name);
        Assert.Equal(message, ex.Message);
    }

    [Theory]
    [InlineData("512", 512UL)]
    [InlineData("64k", 65536UL)]
    [InlineData("64K", 65536UL)]
    [InlineData("1M", 1048576UL)]
    [InlineData("1.5G", 1610612736UL)]
    [InlineData("2T", 2199023255552UL)]
    public void Sizes_parse_with_binary_suffixes(string text, ulong bytes)
    {
        Assert.True(SizeParser.TryParse(text, out ulong v));
        Assert.Equal(bytes, v);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-1")]
    [InlineData("12Q")]
    [InlineData("k")]
    [InlineData("99999999999999999999")]
    public void Bad_sizes_are_refused(string text) => Assert.False(SizeParser.TryParse(text, out _));
}
