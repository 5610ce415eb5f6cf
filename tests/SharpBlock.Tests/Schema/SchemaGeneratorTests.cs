using System.Buffers;
using System.Reflection;
using System.Text;
using System.Text.Json;

namespace SharpBlock.Tests.Schema;

/// <summary>
/// The schema generator on small schemas of the tests' own: what the parser accepts and refuses, the C# types
/// and QMP codecs it emits (compiled and run here), the -o option tables, and output that does not depend on
/// file order.
/// </summary>
public class SchemaGeneratorTests
{
    private const string Paint = """
        # A schema for these tests only.

        ##
        # @Colour:
        #
        # Colours, with the three kinds of word separator wire names use.
        ##
        { 'enum': 'Colour', 'data': [ 'deep-red', 'sea_green', 'blue.ish' ] }

        { 'struct': 'Paint',
          'data': { 'colour': 'Colour', '*coats': 'int', 'brands': ['str'], '*wet': 'bool' } }

        { 'command': 'paint-wall', 'data': { 'wall': 'str', '*paint': 'Paint' }, 'returns': 'Paint' }

        { 'event': 'PAINT_DRY', 'data': { 'wall': 'str' } }
        """;

    private const string Options = """
        ##
        # @ImageCreateTest:
        #
        # Options of a test format.
        #
        # @size: How big the disk is
        #
        # @label: A name written into the header,
        #         continued on a second line
        #
        # @fast: Whether to hurry
        ##
        { 'struct': 'ImageCreateTest', 'data': { '*size': 'size', '*label': 'str', '*fast': 'bool' } }
        """;

    [Fact]
    public void Types_compile_with_wire_names_kept_and_optional_members_nullable()
    {
        var run = GeneratorRun.Run("types", ("paint.qapi", Paint));
        Assert.Empty(run.Diagnostics);
        var asm = GeneratorRun.Compile(run.Source);

        var colour = asm.GetType("SharpBlock.Schema.Colour")!;
        Assert.Equal(["DeepRed", "SeaGreen", "BlueIsh"], Enum.GetNames(colour));
        var toWire = asm.GetType("SharpBlock.Schema.QapiEnums")!.GetMethods().Single(m => m.Name == "ToWire" && m.GetParameters()[0].ParameterType == colour);
        Assert.Equal("blue.ish", toWire.Invoke(null, [Enum.Parse(colour, "BlueIsh")]));

        var paint = asm.GetType("SharpBlock.Schema.Paint")!;
        Assert.True(IsRequired(paint.GetProperty("Colour")!));
        Assert.True(IsRequired(paint.GetProperty("Brands")!));
        Assert.False(IsRequired(paint.GetProperty("Coats")!));
        Assert.Equal(typeof(long?), paint.GetProperty("Coats")!.PropertyType);
        Assert.Equal(typeof(bool?), paint.GetProperty("Wet")!.PropertyType);

        var dry = asm.GetType("SharpBlock.Schema.PaintDry") ?? asm.GetTypes().Single(t => t.GetProperty("EventName") != null && t.IsClass && !t.IsAbstract);
        var instance = Activator.CreateInstance(dry)!;
        Assert.Equal("PAINT_DRY", dry.GetProperty("EventName")!.GetValue(instance));
    }

    [Fact]
    public void Codecs_read_with_qmps_errors_and_write_wire_names()
    {
        var types = GeneratorRun.Run("types", ("paint.qapi", Paint));
        var codec = GeneratorRun.Run("json", ("paint.qapi", Paint));
        Assert.Empty(codec.Diagnostics);
        var asm = GeneratorRun.Compile(types.Source, codec.Source);
        var qapiCodec = asm.GetType("SharpBlock.Qmp.Schema.QapiCodec")!;
        var read = qapiCodec.GetMethod("ReadPaint")!;

        object Read(string json) => read.Invoke(null, [JsonDocument.Parse(json).RootElement, "", false])!;
        string Refusal(string json) =>
            Assert.IsType<SharpBlock.Qmp.Protocol.QmpException>(Assert.Throws<TargetInvocationException>(() => Read(json)).InnerException).Message;

        var value = Read("""{"colour": "sea_green", "brands": ["a", "b"], "coats": 3}""");
        Assert.Equal(3L, value.GetType().GetProperty("Coats")!.GetValue(value));
        Assert.Equal("Parameter 'colour' is missing", Refusal("""{"brands": []}"""));
        Assert.Equal("Invalid parameter type for 'coats', expected: integer", Refusal("""{"colour": "blue.ish", "brands": [], "coats": "3"}"""));
        Assert.Equal("Parameter 'shine' is unexpected", Refusal("""{"colour": "blue.ish", "brands": [], "shine": 1}"""));
        Assert.Contains("colour", Refusal("""{"colour": "purple", "brands": []}"""), StringComparison.Ordinal);

        var buffer = new ArrayBufferWriter<byte>();
        var writer = new SharpBlock.Qmp.Protocol.QmpJsonWriter(buffer);
        qapiCodec.GetMethods().Single(m => m.Name == "Write" && m.GetParameters()[1].ParameterType == value.GetType()).Invoke(null, [writer, value]);
        using var written = JsonDocument.Parse(Encoding.UTF8.GetString(buffer.WrittenSpan));
        Assert.Equal("sea_green", written.RootElement.GetProperty("colour").GetString());
        Assert.Equal(2, written.RootElement.GetProperty("brands").GetArrayLength());
        Assert.False(written.RootElement.TryGetProperty("wet", out _));

        var table = (string[])asm.GetType("SharpBlock.Qmp.Schema.QmpCommandTable")!.GetField("SchemaCommands")!.GetValue(null)!;
        Assert.Equal(["paint-wall"], table);
    }

    [Fact]
    public void Image_option_structs_get_an_option_table_with_the_schemas_help_text()
    {
        var run = GeneratorRun.Run("types", ("image-test.qapi", Options));
        Assert.Empty(run.Diagnostics);
        var asm = GeneratorRun.Compile(run.Source);
        var options = (Array)asm.GetType("SharpBlock.Schema.ImageCreateTest")!.GetField("Options")!.GetValue(null)!;
        var help = options.Cast<SharpBlock.Drivers.Creation.ImageOption>().ToDictionary(o => o.Name, o => o.Help);
        Assert.Equal("How big the disk is", help["size"]);
        Assert.Equal("A name written into the header, continued on a second line", help["label"]);
        Assert.Equal(["size", "label", "fast"], help.Keys);
    }

    [Theory]
    [InlineData("image-test.qapi", "{ 'struct': 'ImageCreateX', 'data': { 'size': 'size' } }", "ImageCreateX.size: image options are optional scalars")]
    [InlineData("image-test.qapi", "{ 'struct': 'ImageCreateX', 'data': { '*size': 'size' } }", "ImageCreateX.size: an image option needs a doc line")]
    [InlineData("x.qapi", "{ 'struct': 'S', 'data': { 'a': 'Nowhere' } }", "Nowhere")]
    [InlineData("x.qapi", "{ 'struct': 'S', 'data': { 'a': 'str' }", "x.qapi")]
    [InlineData("x.qapi", "{ 'enum': 'E', 'data': [ 'a' ] }\n{ 'enum': 'E', 'data': [ 'b' ] }", "E")]
    public void A_bad_schema_is_a_build_error_that_names_the_problem(string file, string text, string expected)
    {
        var run = GeneratorRun.Run("types", (file, text));
        var d = Assert.Single(run.Diagnostics);
        Assert.Equal("QAPI001", d.Id);
        Assert.Equal(Microsoft.CodeAnalysis.DiagnosticSeverity.Error, d.Severity);
        Assert.Contains(expected, d.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        Assert.Empty(run.Source);
    }

    [Fact]
    public void The_output_does_not_depend_on_the_order_the_files_arrive_in()
    {
        (string, string) a = ("a.qapi", Paint), b = ("image-b.qapi", Options);
        Assert.Equal(GeneratorRun.Run("types", a, b).Source, GeneratorRun.Run("types", b, a).Source);
        Assert.Equal(GeneratorRun.Run("json", a, b).Source, GeneratorRun.Run("json", b, a).Source);
    }

    private static bool IsRequired(PropertyInfo p) =>
        p.GetCustomAttributes().Any(a => a.GetType().Name == "RequiredMemberAttribute");
}
