using System.Runtime.InteropServices;

namespace SharpBlock.Drivers.Protocol.Rbd;

/// <summary>
/// The librados and librbd entry points the rbd driver uses, bound by their versioned sonames because the
/// unversioned names only come with the -dev packages. Every function returns 0 or a negative errno unless
/// said otherwise; handles are opaque pointers.
/// </summary>
internal static unsafe partial class LibRbd
{
    private const string Rados = "librados.so.2";
    private const string Rbd = "librbd.so.1";

    [LibraryImport(Rados, EntryPoint = "rados_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RadosCreate(out nint cluster, string? id);

    [LibraryImport(Rados, EntryPoint = "rados_conf_read_file", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RadosConfReadFile(nint cluster, string? path);

    [LibraryImport(Rados, EntryPoint = "rados_conf_set", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RadosConfSet(nint cluster, string option, string value);

    [LibraryImport(Rados, EntryPoint = "rados_connect")]
    public static partial int RadosConnect(nint cluster);

    [LibraryImport(Rados, EntryPoint = "rados_shutdown")]
    public static partial void RadosShutdown(nint cluster);

    [LibraryImport(Rados, EntryPoint = "rados_ioctx_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RadosIoctxCreate(nint cluster, string pool, out nint ioctx);

    [LibraryImport(Rados, EntryPoint = "rados_ioctx_set_namespace", StringMarshalling = StringMarshalling.Utf8)]
    public static partial void RadosIoctxSetNamespace(nint ioctx, string? nspace);

    [LibraryImport(Rados, EntryPoint = "rados_ioctx_destroy")]
    public static partial void RadosIoctxDestroy(nint ioctx);

    [LibraryImport(Rbd, EntryPoint = "rbd_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Create(nint ioctx, string name, ulong size, ref int order);

    [LibraryImport(Rbd, EntryPoint = "rbd_open", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(nint ioctx, string name, out nint image, string? snapName);

    [LibraryImport(Rbd, EntryPoint = "rbd_open_read_only", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int OpenReadOnly(nint ioctx, string name, out nint image, string? snapName);

    [LibraryImport(Rbd, EntryPoint = "rbd_close")]
    public static partial int Close(nint image);

    [LibraryImport(Rbd, EntryPoint = "rbd_get_size")]
    public static partial int GetSize(nint image, out ulong size);

    [LibraryImport(Rbd, EntryPoint = "rbd_resize")]
    public static partial int Resize(nint image, ulong size);

    /// <summary>Fills an rbd_image_info_t (laid out in RbdImage.ObjectSize).</summary>
    [LibraryImport(Rbd, EntryPoint = "rbd_stat")]
    public static partial int Stat(nint image, byte* info, nuint infoSize);

    /// <summary>Fills an array of rbd_snap_info_t {u64 id; u64 size; char *name}; -ERANGE with the count when too small.</summary>
    [LibraryImport(Rbd, EntryPoint = "rbd_snap_list")]
    public static partial int SnapList(nint image, byte* snaps, ref int maxSnaps);

    [LibraryImport(Rbd, EntryPoint = "rbd_snap_list_end")]
    public static partial void SnapListEnd(byte* snaps);

    [LibraryImport(Rbd, EntryPoint = "rbd_snap_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SnapCreate(nint image, string name);

    [LibraryImport(Rbd, EntryPoint = "rbd_snap_remove", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SnapRemove(nint image, string name);

    [LibraryImport(Rbd, EntryPoint = "rbd_snap_rollback", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SnapRollback(nint image, string name);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_create_completion")]
    public static partial int AioCreateCompletion(nint arg, delegate* unmanaged<nint, nint, void> callback, out nint completion);

    /// <summary>The operation's result: 0 (or, for reads, the byte count) on success, a negative errno otherwise.</summary>
    [LibraryImport(Rbd, EntryPoint = "rbd_aio_get_return_value")]
    public static partial nint AioGetReturnValue(nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_release")]
    public static partial void AioRelease(nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_read")]
    public static partial int AioRead(nint image, ulong offset, nuint length, nint buffer, nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_write")]
    public static partial int AioWrite(nint image, ulong offset, nuint length, nint buffer, nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_discard")]
    public static partial int AioDiscard(nint image, ulong offset, ulong length, nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_write_zeroes")]
    public static partial int AioWriteZeroes(nint image, ulong offset, nuint length, nint completion, int zeroFlags, int opFlags);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_flush")]
    public static partial int AioFlush(nint image, nint completion);

    /// <summary>Calls back (synchronously, on the caller's thread) once per extent that has data.</summary>
    [LibraryImport(Rbd, EntryPoint = "rbd_diff_iterate2")]
    public static partial int DiffIterate2(nint image, byte* fromSnapName, ulong offset, ulong length, byte includeParent, byte wholeObject,
        delegate* unmanaged<ulong, nuint, int, nint, int> callback, nint arg);
}
