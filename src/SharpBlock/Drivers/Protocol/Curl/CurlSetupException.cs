namespace SharpBlock.Drivers.Protocol.Curl;

/// <summary>libcurl refused an option while a transfer was being described.</summary>
internal sealed class CurlSetupException(string message) : Exception(message);
