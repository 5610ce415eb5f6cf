namespace SharpBlock.Fuzz;

/// <summary>A target's own consistency check failed (two ways of reading one input disagreed).</summary>
public sealed class FuzzAssertionException(string message) : Exception(message);
