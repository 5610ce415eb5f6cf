namespace SharpBlock.Fuzz;

/// <summary>An input that did not finish within its time bound: a loop on hostile metadata, or a deadlock.</summary>
public sealed class FuzzHangException(string message) : Exception(message);
