using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;
using SharpBlock.SchemaGen;

namespace SharpBlock.Tests.Schema;

/// <summary>
/// Runs the real schema generator the way the build does (additional .qapi files, the QapiEmit property) on
/// small schemas written by a test, and compiles what it emits against the real library assemblies.
/// </summary>
internal sealed class GeneratorRun
{
    private GeneratorRun(string source, ImmutableArray<Diagnostic> diagnostics)
    {
        Source = source;
        Diagnostics = diagnostics;
    }

    public string Source { get; }

    public ImmutableArray<Diagnostic> Diagnostics { get; }

    public static GeneratorRun Run(string mode, params (string Name, string Text)[] files)
    {
        var compilation = CSharpCompilation.Create("empty", options: new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        GeneratorDriver driver = CSharpGeneratorDriver.Create(
            [new QapiGenerator().AsSourceGenerator()],
            files.Select(f => (AdditionalText)new SchemaText("/schema/" + f.Name, f.Text)),
            optionsProvider: new Options(mode));
        driver = driver.RunGenerators(compilation);
        var result = driver.GetRunResult().Results[0];
        string source = string.Concat(result.GeneratedSources.Select(s => s.SourceText.ToString()));
        return new GeneratorRun(source, result.Diagnostics);
    }

    /// <summary>Compiles generated sources into an assembly loaded in its own collectible context.</summary>
    public static Assembly Compile(params string[] sources)
    {
        var refs = new List<MetadataReference>();
        foreach (string path in ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator))
            refs.Add(MetadataReference.CreateFromFile(path));
        refs.Add(MetadataReference.CreateFromFile(typeof(SharpBlock.Graph.BlockNode).Assembly.Location));
        refs.Add(MetadataReference.CreateFromFile(typeof(SharpBlock.Qmp.Schema.QapiRead).Assembly.Location));
        var compilation = CSharpCompilation.Create(
            "Generated" + Guid.NewGuid().ToString("N"),
            sources.Select(s => CSharpSyntaxTree.ParseText(s, new CSharpParseOptions(LanguageVersion.Preview))),
            refs,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        using var ms = new MemoryStream();
        var emit = compilation.Emit(ms);
        var errors = emit.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, "generated code does not compile:\n" + string.Join("\n", errors.Take(20)));
        ms.Position = 0;
        return new AssemblyLoadContext("generated", isCollectible: true).LoadFromStream(ms);
    }

    private sealed class SchemaText(string path, string text) : AdditionalText
    {
        public override string Path { get; } = path;

        public override SourceText GetText(CancellationToken cancellationToken = default) => SourceText.From(text);
    }

    private sealed class Options(string mode) : AnalyzerConfigOptionsProvider
    {
        public override AnalyzerConfigOptions GlobalOptions { get; } = new Values(mode);

        public override AnalyzerConfigOptions GetOptions(SyntaxTree tree) => GlobalOptions;

        public override AnalyzerConfigOptions GetOptions(AdditionalText textFile) => GlobalOptions;
    }

    private sealed class Values(string mode) : AnalyzerConfigOptions
    {
        public override bool TryGetValue(string key, out string value)
        {
            value = mode;
            return key == "build_property.QapiEmit";
        }
    }
}
