using System.Runtime.CompilerServices;

namespace SharpBlock.Testing;

/// <summary>
/// Every .NET process the tests start (the tool, the daemon, helpers) inherits this: no diagnostics IPC. Each
/// such process otherwise leaves a diagnostics socket and two debugger pipes in the system temp folder, and
/// the ones the tests kill on purpose never remove theirs.
/// </summary>
internal static class QuietProcesses
{
    [ModuleInitializer]
    internal static void Init() => Environment.SetEnvironmentVariable("DOTNET_EnableDiagnostics", "0");
}
