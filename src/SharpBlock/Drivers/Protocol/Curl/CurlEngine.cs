using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>
/// Runs the transfers of every curl node of the process on one libcurl multi handle, driven by one thread.
/// libcurl's handles are not thread-safe, so only that thread touches them; other threads hand transfers over
/// through a queue and wake it with curl_multi_wakeup (the one call libcurl allows from any thread). Transfers
/// run concurrently, and the multi handle's connection cache keeps connections to a server open between them,
/// so a run of small reads does not pay a TCP (and TLS) handshake each.
/// </summary>
internal sealed unsafe class CurlEngine
{
    private static readonly Lazy<CurlEngine> s_shared = new(() => new CurlEngine(), LazyThreadSafetyMode.ExecutionAndPublication);

    // Handles kept for reuse after a burst of parallel reads; more than this are freed.
    private const int MaxIdleHandles = 16;

    private readonly nint _multi;
    private readonly ConcurrentQueue<CurlTransfer> _incoming = new();

    // Engine-thread state: idle easy handles (reset, each with its error buffer) and the running ones.
    private readonly Stack<(nint Easy, nint Error)> _idle = new();
    private readonly Dictionary<nint, (CurlTransfer Transfer, nint Error)> _running = [];

    private CurlEngine()
    {
        if (LibCurl.GlobalInit(LibCurl.GlobalDefault) != 0)
            throw new CurlSetupException("curl_global_init failed");
        _multi = LibCurl.MultiInit();
        if (_multi == 0)
            throw new CurlSetupException("curl_multi_init failed");
        // A background thread: the engine lives as long as the process and must not keep it alive.
        new Thread(Run) { IsBackground = true, Name = "sharpblock-curl" }.Start();
    }

    /// <summary>The process's engine, started on first use (that is also when libcurl is loaded).</summary>
    public static CurlEngine Shared => s_shared.Value;

    /// <summary>Starts a transfer; the task completes when it has ended, successfully or not.</summary>
    public Task<CurlOutcome> RunAsync(CurlTransfer transfer)
    {
        _incoming.Enqueue(transfer);
        LibCurl.MultiWakeup(_multi);
        return transfer.Completion;
    }

    private void Run()
    {
        int running = 0;
        int fds = 0;
        while (true)
        {
            while (_incoming.TryDequeue(out var t))
                Start(t);
            LibCurl.MultiPerform(_multi, &running);
            Reap();
            // Waits for socket activity, a transfer's timer, or a wakeup from RunAsync.
            LibCurl.MultiPoll(_multi, 0, 0, _running.Count == 0 ? 10_000 : 1000, &fds);
        }
    }

    private void Start(CurlTransfer t)
    {
        var (easy, error) = _idle.Count > 0 ? _idle.Pop() : (LibCurl.EasyInit(), (nint)NativeMemory.AllocZeroed(LibCurl.ErrorSize));
        if (easy == 0)
        {
            NativeMemory.Free((void*)error);
            t.Abandon("curl_easy_init failed");
            return;
        }

        try
        {
            t.Configure(easy, (byte*)error);
        }
        catch (CurlSetupException ex)
        {
            t.Abandon(ex.Message);
            Recycle(easy, error);
            return;
        }

        int code = LibCurl.MultiAdd(_multi, easy);
        if (code != 0)
        {
            t.Abandon($"curl_multi_add_handle failed ({code})");
            Recycle(easy, error);
            return;
        }

        _running[easy] = (t, error);
    }

    private void Reap()
    {
        int left = 0;
        LibCurl.Message* m;
        while ((m = LibCurl.MultiInfoRead(_multi, &left)) != null)
        {
            if (m->Msg != LibCurl.MsgDone || !_running.Remove(m->Easy, out var r))
                continue;
            nint easy = m->Easy;
            int result = m->Result;
            LibCurl.MultiRemove(_multi, easy);
            r.Transfer.Finish(easy, result, (byte*)r.Error);
            Recycle(easy, r.Error);
        }
    }

    private void Recycle(nint easy, nint error)
    {
        if (_idle.Count >= MaxIdleHandles)
        {
            LibCurl.EasyCleanup(easy);
            NativeMemory.Free((void*)error);
            return;
        }

        LibCurl.EasyReset(easy);
        *(byte*)error = 0;
        _idle.Push((easy, error));
    }
}
