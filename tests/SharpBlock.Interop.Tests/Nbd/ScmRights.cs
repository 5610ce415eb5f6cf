using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace SharpBlock.Interop.Tests.Nbd;

/// <summary>Sends bytes with one file descriptor attached (SCM_RIGHTS), as libvirt does before QMP's getfd.</summary>
internal static partial class ScmRights
{
    public static unsafe void Send(Socket socket, byte[] data, int fd)
    {
        const int headerSize = 16; // struct cmsghdr on 64-bit Linux: size_t len, int level, int type
        byte* control = stackalloc byte[headerSize + 8];
        new Span<byte>(control, headerSize + 8).Clear();
        *(nuint*)control = (nuint)(headerSize + sizeof(int));
        *(int*)(control + 8) = 1; // SOL_SOCKET
        *(int*)(control + 12) = 1; // SCM_RIGHTS
        *(int*)(control + headerSize) = fd;
        fixed (byte* p = data)
        {
            var iov = new IoVec { Base = p, Length = (nuint)data.Length };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)(headerSize + 8) };
            nint sent = SendMsg((int)socket.Handle, &msg, 0);
            if (sent != data.Length)
                throw new IOException($"sendmsg sent {sent} of {data.Length} bytes, errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static unsafe partial nint SendMsg(int socket, MsgHdr* message, int flags);
}
