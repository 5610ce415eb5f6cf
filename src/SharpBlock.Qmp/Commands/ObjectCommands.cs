using SharpBlock.Graph;
using SharpBlock.Jobs;
using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Schema;

namespace SharpBlock.Qmp.Commands;

/// <summary>object-add and object-del (QEMU 7.2) for the one kind of object we have: secrets, into the graph's SecretStore.</summary>
internal static class ObjectCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.ObjectAdd(static (a, ctx) =>
        {
            var store = ctx.Server.Graph.Secrets;
            // QEMU's id rule is the job id's one.
            if (!JobManager.WellFormedId(a.Id))
                throw new QmpException("Parameter 'id' expects an identifier");
            // QEMU names the object before it loads it, so a duplicate is refused whatever its data says.
            if (store.Contains(a.Id))
                throw new QmpException($"attempt to add duplicate property '{a.Id}' to object (type 'container')");
            var s = a.Secret ?? new SecretProperties();
            byte[] value = SecretLoader.Load(store, s.Data, s.File, s.Format == QCryptoSecretFormat.Base64, s.Keyid, s.Iv);
            store.Add(a.Id, value);
            return ValueTask.CompletedTask;
        }));
        server.Register(QmpCommandTable.ObjectDel(static (a, ctx) =>
        {
            ctx.Server.Graph.Secrets.Remove(a.Id);
            return ValueTask.CompletedTask;
        }));
    }
}
