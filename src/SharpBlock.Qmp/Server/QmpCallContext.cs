namespace SharpBlock.Qmp.Server;

/// <summary>What a command handler may use: the session that sent it and the server it runs in.</summary>
public sealed class QmpCallContext
{
    internal QmpCallContext(QmpServer server, QmpSession session, CancellationToken cancellationToken)
    {
        Server = server;
        Session = session;
        CancellationToken = cancellationToken;
    }

    public QmpServer Server { get; }
    public QmpSession Session { get; }
    public CancellationToken CancellationToken { get; }
}
