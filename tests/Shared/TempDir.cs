namespace SharpBlock.Testing;

/// <summary>A scratch directory on the real file system, removed with everything in it at the end of a test.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sharpblock-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Creates a file of the given size filled with a repeatable pattern; returns its path.</summary>
    public string PatternFile(string name, int size, int seed = 1)
    {
        string p = File(name);
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        System.IO.File.WriteAllBytes(p, bytes);
        return p;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
