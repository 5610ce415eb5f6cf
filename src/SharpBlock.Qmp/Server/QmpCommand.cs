using System.Text.Json;
using SharpBlock.Qmp.Protocol;

namespace SharpBlock.Qmp.Server;

/// <summary>
/// Runs one command: arguments (absent or an object) in, a writer for the 'return' value out; null
/// means the empty object.
/// </summary>
public delegate ValueTask<Action<QmpJsonWriter>?> QmpCommandInvoker(JsonElement? arguments, QmpCallContext context);

/// <summary>An entry of the command table.</summary>
public sealed record QmpCommand(string Name, QmpCommandInvoker Invoke);
