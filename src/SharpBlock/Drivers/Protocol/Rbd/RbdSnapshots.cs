using System.Runtime.InteropServices;

namespace SharpBlock.Drivers.Protocol.Rbd;

/// <summary>
/// An rbd image's snapshots through librbd's synchronous calls. rbd names a snapshot by its name alone, so the
/// name is also the id the QEMU commands see (as QEMU's rbd driver reports them); a snapshot has no date, VM
/// clock or VM state, and its "VM size" is the image size it was taken at.
/// </summary>
internal static unsafe class RbdSnapshots
{
    /// <summary>rbd_snap_info_t: u64 id, u64 size, const char *name.</summary>
    private const int InfoSize = 16 + 8;

    public static List<InternalSnapshot> List(RbdImage image)
    {
        int max = 16;
        while (true)
        {
            // rbd_snap_list writes one more (zeroed) entry after the last snapshot as its end marker.
            byte[] buf = new byte[(max + 1) * InfoSize];
            fixed (byte* p = buf)
            {
                int want = max;
                int r = LibRbd.SnapList(image.Handle, p, ref want);
                if (r == -(int)Errors.Errno.ERANGE && want > max)
                {
                    max = want;
                    continue;
                }

                RbdErrors.Check(r, $"error listing the snapshots of rbd image '{image.Display}'");
                var list = new List<InternalSnapshot>(r);
                for (int i = 0; i < r; i++)
                {
                    byte* info = p + (i * InfoSize);
                    long size = (long)*(ulong*)(info + 8);
                    string name = Marshal.PtrToStringUTF8(*(nint*)(info + 16)) ?? "";
                    list.Add(new InternalSnapshot(name, name, 0, 0, 0, size, size, 0));
                }

                LibRbd.SnapListEnd(p);
                return list;
            }
        }
    }

    /// <summary>The snapshot whose name (= id) is <paramref name="idOrName"/>, or ENOENT.</summary>
    public static InternalSnapshot Find(RbdImage image, string idOrName)
    {
        foreach (var s in List(image))
        {
            if (s.Name == idOrName)
                return s;
        }

        throw new Errors.BlockException(Errors.Errno.ENOENT, $"snapshot '{idOrName}' of rbd image '{image.Display}' not found");
    }

    public static InternalSnapshot Create(RbdImage image, string name)
    {
        if (name.Length == 0)
            throw new Errors.BlockException(Errors.Errno.EINVAL, "rbd needs a snapshot name");
        int r = LibRbd.SnapCreate(image.Handle, name);
        // qemu-img words a failed create as the errno and its text.
        if (r < 0)
            throw new Errors.BlockException((Errors.Errno)(-r), $"{r} ({Errors.BlockException.Describe((Errors.Errno)(-r))})");
        return Find(image, name);
    }

    public static InternalSnapshot Remove(RbdImage image, string idOrName)
    {
        var s = Find(image, idOrName);
        RbdErrors.Check(LibRbd.SnapRemove(image.Handle, s.Name), $"error removing snapshot '{s.Name}' of rbd image '{image.Display}'");
        return s;
    }

    public static void Rollback(RbdImage image, string idOrName)
    {
        var s = Find(image, idOrName);
        RbdErrors.Check(LibRbd.SnapRollback(image.Handle, s.Name), $"error rolling rbd image '{image.Display}' back to snapshot '{s.Name}'");
    }
}
