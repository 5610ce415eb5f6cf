using System.Text;
using SharpBlock.Schema;

namespace SharpBlock.Drivers.Protocol.Rbd;

/// <summary>
/// An open rbd image and the cluster connection and pool context under it. librados' connect and librbd's open
/// block, so they run on the thread pool; the client's mount and OSD timeouts bound them (and every later
/// operation), so that a cluster that is down is an error, never a hang.
/// </summary>
internal sealed class RbdImage : IDisposable
{
    /// <summary>Seconds librados waits for the monitors (and for an OSD op) unless the configuration says otherwise.</summary>
    private const string DefaultTimeout = "20";

    private nint _cluster;
    private nint _ioctx;
    private nint _image;

    private RbdImage(nint cluster, nint ioctx, string display)
    {
        _cluster = cluster;
        _ioctx = ioctx;
        Display = display;
    }

    public nint Handle => _image;

    /// <summary>pool[/namespace]/image, for messages.</summary>
    public string Display { get; }

    /// <summary>Connects and opens the image (read-only at a snapshot).</summary>
    public static Task<RbdImage> OpenAsync(BlockdevOptionsRbd o, string? key, bool readOnly) => Task.Run(() =>
    {
        var img = Connect(o, key);
        try
        {
            string? snap = o.Snapshot;
            int r = readOnly || snap != null
                ? LibRbd.OpenReadOnly(img._ioctx, o.Image, out img._image, snap)
                : LibRbd.Open(img._ioctx, o.Image, out img._image, snap);
            RbdErrors.Check(r, snap == null ? $"error opening rbd image '{img.Display}'" : $"error opening snapshot '{snap}' of rbd image '{img.Display}'");
            return img;
        }
        catch
        {
            img.Dispose();
            throw;
        }
    });

    /// <summary>Creates a new image of <paramref name="size"/> bytes with librbd's default features.</summary>
    public static Task CreateAsync(BlockdevOptionsRbd o, string? key, long size) => Task.Run(() =>
    {
        using var img = Connect(o, key);
        int order = 0;
        RbdErrors.Check(LibRbd.Create(img._ioctx, o.Image, (ulong)size, ref order), $"error creating rbd image '{img.Display}'");
    });

    private static RbdImage Connect(BlockdevOptionsRbd o, string? key)
    {
        string display = (string.IsNullOrEmpty(o.Namespace) ? o.Pool : o.Pool + "/" + o.Namespace) + "/" + o.Image;
        RbdErrors.Check(LibRbd.RadosCreate(out nint cluster, o.User), "error initializing rados");
        var img = new RbdImage(cluster, 0, display);
        try
        {
            LibRbd.RadosConfSet(cluster, "client_mount_timeout", DefaultTimeout);
            LibRbd.RadosConfSet(cluster, "rados_osd_op_timeout", DefaultTimeout);
            LibRbd.RadosConfSet(cluster, "rados_mon_op_timeout", DefaultTimeout);
            // Without a named file librados searches its default places; finding none there is not an error.
            int r = LibRbd.RadosConfReadFile(cluster, o.Conf);
            if (o.Conf != null)
                RbdErrors.Check(r, $"error reading Ceph configuration '{o.Conf}'");
            if (o.Server is { Count: > 0 } servers)
                Set(cluster, "mon_host", MonHost(servers));
            if (o.AuthClientRequired is { Count: > 0 } modes)
                Set(cluster, "auth_client_required", string.Join(';', modes.Select(m => m == RbdAuthMode.Cephx ? "cephx" : "none")));
            if (key != null)
                Set(cluster, "key", key);
            RbdErrors.Check(LibRbd.RadosConnect(cluster), $"error connecting to the Ceph cluster for rbd image '{display}'");
            RbdErrors.Check(LibRbd.RadosIoctxCreate(cluster, o.Pool, out img._ioctx), $"error opening pool '{o.Pool}' for rbd image '{display}'");
            LibRbd.RadosIoctxSetNamespace(img._ioctx, o.Namespace ?? "");
            return img;
        }
        catch
        {
            img.Dispose();
            throw;
        }
    }

    private static void Set(nint cluster, string option, string value) =>
        RbdErrors.Check(LibRbd.RadosConfSet(cluster, option, value), $"error setting Ceph option '{option}'");

    private static string MonHost(IEnumerable<InetSocketAddress> servers)
    {
        var sb = new StringBuilder();
        foreach (var s in servers)
        {
            if (sb.Length > 0)
                sb.Append(',');
            sb.Append(s.Host.Contains(':', StringComparison.Ordinal) ? "[" + s.Host + "]" : s.Host).Append(':').Append(s.Port);
        }

        return sb.ToString();
    }

    public long GetSize()
    {
        RbdErrors.Check(LibRbd.GetSize(_image, out ulong size), $"error reading the size of rbd image '{Display}'");
        return (long)size;
    }

    /// <summary>The object size librbd stripes the image over (rbd_image_info_t.obj_size).</summary>
    public unsafe long ObjectSize()
    {
        // size, obj_size, num_objs (u64 each), order, block_name_prefix[24], parent_pool, parent_name[96].
        byte* info = stackalloc byte[256];
        RbdErrors.Check(LibRbd.Stat(_image, info, 256), $"error reading rbd image '{Display}'");
        return (long)*(ulong*)(info + 8);
    }

    public void Dispose()
    {
        if (_image != 0)
            LibRbd.Close(_image);
        if (_ioctx != 0)
            LibRbd.RadosIoctxDestroy(_ioctx);
        if (_cluster != 0)
            LibRbd.RadosShutdown(_cluster);
        _image = _ioctx = _cluster = 0;
    }

}
