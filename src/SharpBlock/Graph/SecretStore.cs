using SharpBlock.Errors;

namespace SharpBlock.Graph;

/// <summary>
/// Secrets the daemon was given (--object secret,id=ID,data=...), looked up by id when an image names one
/// (a qcow2 image's encrypt.key-secret). Kept apart from the options so a password never shows up in
/// query results that echo them.
/// </summary>
public sealed class SecretStore
{
    private readonly Dictionary<string, string> _byId = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>Adds a secret; ids are unique, as QEMU's object ids are.</summary>
    public void Add(string id, string value)
    {
        lock (_lock)
        {
            if (!_byId.TryAdd(id, value))
                throw new BlockException(Errno.EEXIST, $"attempt to add duplicate property '{id}' to object (type 'container')");
        }
    }

    /// <summary>The secret with this id, in QEMU's words when there is none.</summary>
    public string Get(string id)
    {
        lock (_lock)
        {
            return _byId.TryGetValue(id, out var v) ? v : throw new BlockException(Errno.ENOENT, $"No secret with id '{id}'");
        }
    }
}
