using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace SharpBlock.Net;

/// <summary>
/// The reading side of a Unix socket that also collects file descriptors the peer attaches with SCM_RIGHTS,
/// as QEMU's monitor does for getfd. .NET's Socket drops ancillary data of that kind, so bytes are taken with
/// recvmsg(2); the wait for data is the socket's own zero-byte receive, so no thread blocks meanwhile.
/// </summary>
public sealed partial class FdPassingStream : Stream
{
    private const int SolSocket = 1;
    private const int ScmRights = 1;
    private const int MsgDontWait = 0x40;
    private const int MsgCmsgCloexec = 0x40000000;
    private const int Eagain = 11;
    private const int Eintr = 4;

    // Room for a few descriptors per message; QEMU's monitor takes one per command.
    private const int MaxFds = 16;

    private readonly Socket _socket;
    private readonly Lock _lock = new();
    private List<int> _pending = [];
    private bool _disposed;

    public FdPassingStream(Socket socket)
    {
        _socket = socket;
    }

    /// <summary>
    /// Takes the first descriptor of the latest message that carried any, or -1 when none is waiting. As in
    /// QEMU a later message with descriptors replaces (and closes) ones nobody took.
    /// </summary>
    public int TakeReceivedFd()
    {
        lock (_lock)
        {
            if (_pending.Count == 0)
                return -1;
            int fd = _pending[0];
            for (int i = 1; i < _pending.Count; i++)
                _ = Close(_pending[i]);
            _pending = [];
            return fd;
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.Length == 0)
            return 0;
        while (true)
        {
            int n = TryReceive(buffer.Span, out int errno);
            if (n >= 0)
                return n;
            if (errno != Eagain && errno != Eintr)
                throw new IOException($"recvmsg failed: {Marshal.GetPInvokeErrorMessage(errno)}");
            // Wakes when data (or the peer's end) is there, without taking any of it.
            await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("FdPassingStream reads asynchronously only");

    private unsafe int TryReceive(Span<byte> buffer, out int errno)
    {
        int controlLength = CmsgSpace(MaxFds * sizeof(int));
        byte* control = stackalloc byte[controlLength];
        new Span<byte>(control, controlLength).Clear();
        fixed (byte* data = buffer)
        {
            var iov = new IoVec { Base = data, Length = (nuint)buffer.Length };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)controlLength };
            nint n = RecvMsg((int)_socket.Handle, &msg, MsgDontWait | MsgCmsgCloexec);
            if (n < 0)
            {
                errno = Marshal.GetLastPInvokeError();
                return -1;
            }

            errno = 0;
            CollectFds(control, (int)msg.ControlLength);
            return (int)n;
        }
    }

    private unsafe void CollectFds(byte* control, int length)
    {
        List<int>? got = null;
        int header = sizeof(CmsgHdr);
        for (int off = 0; off + header <= length;)
        {
            var h = (CmsgHdr*)(control + off);
            int len = (int)h->Length;
            if (len < header || off + len > length)
                break;
            if (h->Level == SolSocket && h->Type == ScmRights)
            {
                int count = (len - Align(header)) / sizeof(int);
                int* fds = (int*)(control + off + Align(header));
                for (int i = 0; i < count; i++)
                    (got ??= []).Add(fds[i]);
            }

            off += Align(len);
        }

        if (got == null)
            return;
        lock (_lock)
        {
            foreach (int fd in _pending)
                _ = Close(fd);
            _pending = got;
            if (_disposed)
                TakeAndCloseAll();
        }
    }

    private void TakeAndCloseAll()
    {
        foreach (int fd in _pending)
            _ = Close(fd);
        _pending = [];
    }

    private static int Align(int n) => (n + nint.Size - 1) & ~(nint.Size - 1);

    private static unsafe int CmsgSpace(int data) => Align(sizeof(CmsgHdr)) + Align(data);

    protected override void Dispose(bool disposing)
    {
        lock (_lock)
        {
            _disposed = true;
            TakeAndCloseAll();
        }

        base.Dispose(disposing);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    // struct iovec, struct msghdr and struct cmsghdr of 64-bit Linux (glibc and musl agree on these).
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

    [StructLayout(LayoutKind.Sequential)]
    private struct CmsgHdr
    {
        public nuint Length;
        public int Level;
        public int Type;
    }

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static unsafe partial nint RecvMsg(int socket, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    /// <summary>Closes a descriptor that was taken but not used.</summary>
    public static void CloseFd(int fd) => _ = Close(fd);
}
