using System.Runtime.InteropServices;

namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>
/// The part of libcurl's C API the curl drivers use: the easy interface to describe one transfer, the multi
/// interface to run many at once on one thread. Loaded by its versioned soname (Debian's libcurl4), so no
/// development package is needed. Option and info numbers are libcurl's ABI: a type base plus an index
/// (long 0, object pointer 10000, function pointer 20000, off_t 30000; info string 0x100000, long 0x200000,
/// off_t 0x600000), fixed since the options were added.
/// </summary>
internal static partial class LibCurl
{
    private const string Lib = "libcurl.so.4";

    public const long GlobalDefault = 3; // CURL_GLOBAL_SSL | CURL_GLOBAL_WIN32
    public const int MsgDone = 1;

    public const int OptTimeout = 13;
    public const int OptFailOnError = 45;
    public const int OptNoBody = 44;
    public const int OptSslVerifyPeer = 64;
    public const int OptConnectTimeout = 78;
    public const int OptSslVerifyHost = 81;
    public const int OptNoSignal = 99;
    public const int OptTftpBlockSize = 178;
    public const int OptWriteData = 10001;
    public const int OptUrl = 10002;
    public const int OptRange = 10007;
    public const int OptErrorBuffer = 10010;
    public const int OptCookie = 10022;
    public const int OptHeaderData = 10029;
    public const int OptPrivate = 10103;
    public const int OptUserName = 10173;
    public const int OptPassword = 10174;
    public const int OptProxyUserName = 10175;
    public const int OptProxyPassword = 10176;
    public const int OptProtocolsStr = 10318;
    public const int OptWriteFunction = 20011;
    public const int OptHeaderFunction = 20079;

    public const int InfoPrivate = 0x100000 + 21;
    public const int InfoResponseCode = 0x200000 + 2;
    public const int InfoContentLengthDownload = 0x600000 + 15;

    /// <summary>libcurl's CURL_ERROR_SIZE: the error buffer must hold this many bytes.</summary>
    public const int ErrorSize = 256;

    /// <summary>CURLE_WRITE_ERROR: what a transfer ends with when the write callback stops it on purpose.</summary>
    public const int WriteError = 23;

    /// <summary>struct CURLMsg on 64-bit Linux: an enum, the easy handle, then a union whose first int is the result.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Message
    {
        public int Msg;
        public nint Easy;
        public int Result;
    }

    [LibraryImport(Lib, EntryPoint = "curl_global_init")]
    public static partial int GlobalInit(long flags);

    [LibraryImport(Lib, EntryPoint = "curl_easy_init")]
    public static partial nint EasyInit();

    [LibraryImport(Lib, EntryPoint = "curl_easy_cleanup")]
    public static partial void EasyCleanup(nint easy);

    [LibraryImport(Lib, EntryPoint = "curl_easy_reset")]
    public static partial void EasyReset(nint easy);

    [LibraryImport(Lib, EntryPoint = "curl_easy_setopt")]
    public static partial int SetOptLong(nint easy, int option, long value);

    [LibraryImport(Lib, EntryPoint = "curl_easy_setopt")]
    public static partial int SetOptPtr(nint easy, int option, nint value);

    /// <summary>String options: libcurl copies the text, so the marshalled buffer may go away after the call.</summary>
    [LibraryImport(Lib, EntryPoint = "curl_easy_setopt", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SetOptString(nint easy, int option, string value);

    [LibraryImport(Lib, EntryPoint = "curl_easy_getinfo")]
    public static unsafe partial int GetInfoLong(nint easy, int info, long* value);

    [LibraryImport(Lib, EntryPoint = "curl_easy_getinfo")]
    public static unsafe partial int GetInfoPtr(nint easy, int info, nint* value);

    [LibraryImport(Lib, EntryPoint = "curl_easy_strerror")]
    public static partial nint EasyStrError(int code);

    [LibraryImport(Lib, EntryPoint = "curl_multi_init")]
    public static partial nint MultiInit();

    [LibraryImport(Lib, EntryPoint = "curl_multi_add_handle")]
    public static partial int MultiAdd(nint multi, nint easy);

    [LibraryImport(Lib, EntryPoint = "curl_multi_remove_handle")]
    public static partial int MultiRemove(nint multi, nint easy);

    [LibraryImport(Lib, EntryPoint = "curl_multi_perform")]
    public static unsafe partial int MultiPerform(nint multi, int* running);

    [LibraryImport(Lib, EntryPoint = "curl_multi_poll")]
    public static unsafe partial int MultiPoll(nint multi, nint extraFds, uint extraCount, int timeoutMs, int* numFds);

    [LibraryImport(Lib, EntryPoint = "curl_multi_wakeup")]
    public static partial int MultiWakeup(nint multi);

    [LibraryImport(Lib, EntryPoint = "curl_multi_info_read")]
    public static unsafe partial Message* MultiInfoRead(nint multi, int* left);

    /// <summary>libcurl's text for an error code, for when the error buffer stayed empty.</summary>
    public static string StrError(int code) => Marshal.PtrToStringUTF8(EasyStrError(code)) ?? $"error {code}";
}
