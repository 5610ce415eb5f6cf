namespace SharpBlock.Nbd.Protocol;

/// <summary>Why a peer's bytes cannot be accepted; the connection they came on is closed, nothing else.</summary>
public enum NbdProtocolError
{
    BadMagic,
    UnknownClientFlags,
    OptionTooLong,
    RequestTooLarge,
    Malformed,
    UnexpectedReply,
}

/// <summary>A peer broke the protocol. Raised by the framing code; the session ends the connection.</summary>
public sealed class NbdProtocolException : Exception
{
    public NbdProtocolException(NbdProtocolError error, string message)
        : base(message)
    {
        Error = error;
    }

    public NbdProtocolError Error { get; }
}
