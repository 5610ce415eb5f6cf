using System.Text;
using SharpBlock.Errors;

namespace SharpBlock.Graph;

/// <summary>
/// Secrets the daemon was given (--object secret or QMP object-add), looked up by id when an image names
/// one (a qcow2 image's encrypt.key-secret). Kept apart from the options so a password never shows up in
/// query results that echo them. Values are bytes: a master key (keyid) is 32 raw bytes, not text.
/// </summary>
public sealed class SecretStore
{
    private readonly Dictionary<string, byte[]> _byId = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>Adds a secret; ids are unique, as QEMU's object ids are.</summary>
    public void Add(string id, string value) => Add(id, Encoding.UTF8.GetBytes(value));

    /// <summary>Adds a secret given as bytes.</summary>
    public void Add(string id, byte[] value)
    {
        lock (_lock)
        {
            if (!_byId.TryAdd(id, value))
                throw new BlockException(Errno.EEXIST, $"attempt to add duplicate property '{id}' to object (type 'container')");
        }
    }

    /// <summary>
    /// object-del: forgets a secret. Images that took their key from it keep the key (they read it at open,
    /// as QEMU's do), so a secret is never "in use" once an image is open.
    /// </summary>
    public void Remove(string id)
    {
        lock (_lock)
        {
            if (!_byId.Remove(id))
                throw new BlockException(Errno.ENOENT, $"object '{id}' not found");
        }
    }

    /// <summary>Whether a secret with this id exists.</summary>
    public bool Contains(string id)
    {
        lock (_lock)
            return _byId.ContainsKey(id);
    }

    /// <summary>The secret with this id as text, in QEMU's words when there is none.</summary>
    public string Get(string id) => Encoding.UTF8.GetString(GetBytes(id));

    /// <summary>The secret with this id as bytes.</summary>
    public byte[] GetBytes(string id)
    {
        lock (_lock)
        {
            return _byId.TryGetValue(id, out var v) ? v : throw new BlockException(Errno.ENOENT, $"No secret with id '{id}'");
        }
    }
}
