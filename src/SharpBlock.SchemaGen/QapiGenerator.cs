using System;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace SharpBlock.SchemaGen;

/// <summary>
/// The schema's one road into C#: the library project asks for the plain types (QapiEmit=types), the QMP
/// project for the JSON readers, writers and command table (QapiEmit=json). Both read the same .qapi files.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class QapiGenerator : IIncrementalGenerator
{
    private static readonly DiagnosticDescriptor SchemaError = new(
        "QAPI001", "Schema error", "{0}", "SharpBlock.Schema", DiagnosticSeverity.Error, isEnabledByDefault: true);

    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var files = context.AdditionalTextsProvider
            .Where(static f => f.Path.EndsWith(".qapi", StringComparison.Ordinal))
            .Select(static (f, ct) => (Path: f.Path, Text: f.GetText(ct)?.ToString() ?? ""))
            .Collect();
        var mode = context.AnalyzerConfigOptionsProvider.Select(static (p, _) =>
            p.GlobalOptions.TryGetValue("build_property.QapiEmit", out var m) ? m : "");
        context.RegisterSourceOutput(files.Combine(mode), static (spc, input) => Generate(spc, input.Left, input.Right));
    }

    private static void Generate(SourceProductionContext spc, ImmutableArray<(string Path, string Text)> files, string mode)
    {
        if (files.IsDefaultOrEmpty || mode.Length == 0)
            return;
        var schema = new Schema();
        try
        {
            // Sorted so the definition order, and so the generated text, does not depend on file enumeration.
            foreach (var f in files.OrderBy(static f => f.Path, StringComparer.Ordinal))
                schema.AddFile(f.Text, System.IO.Path.GetFileName(f.Path));
            schema.Resolve();
            string text = mode == "types" ? TypesEmitter.Emit(schema) : CodecEmitter.Emit(schema);
            spc.AddSource(mode == "types" ? "Qapi.Types.g.cs" : "Qapi.Codec.g.cs", SourceText.From(text, System.Text.Encoding.UTF8));
        }
        catch (Exception ex) when (ex is FormatException or InvalidCastException or NullReferenceException or System.Collections.Generic.KeyNotFoundException)
        {
            spc.ReportDiagnostic(Diagnostic.Create(SchemaError, Location.None, ex.Message));
        }
    }
}
