using SharpBlock.Qmp.Protocol;
using SharpBlock.Qmp.Schema;
using SharpBlock.Qmp.Server;
using SharpBlock.Throttling;

namespace SharpBlock.Qmp.Commands;

/// <summary>What governs a device's I/O: 'cont' after an error stopped it, and block_set_io_throttle.</summary>
internal static class IoPolicyCommands
{
    public static void Register(QmpServer server)
    {
        server.Register(QmpCommandTable.Cont(static ctx =>
        {
            // Like QEMU's cont for the whole machine: every stopped device resumes and io-status resets.
            // A device still waiting for its key keeps the machine from starting, as in QEMU.
            var devices = ctx.Server.Graph.Devices.ToArray();
            foreach (var dev in devices)
                EncryptionCommands.ThrowIfKeyMissing(dev);
            foreach (var dev in devices)
                dev.Resume();
            return ValueTask.CompletedTask;
        }));

        server.Register(QmpCommandTable.BlockSetIoThrottle(static (a, ctx) =>
        {
            var dev = ctx.Server.Graph.FindDevice(a.Device) ?? throw QmpException.DeviceNotFound(a.Device);
            if (dev.Root == null)
                throw new QmpException("Device has no medium");
            dev.SetThrottleLimits(new ThrottleLimits
            {
                Bps = a.Bps,
                BpsRead = a.BpsRd,
                BpsWrite = a.BpsWr,
                Iops = a.Iops,
                IopsRead = a.IopsRd,
                IopsWrite = a.IopsWr,
                BpsMax = a.BpsMax ?? 0,
                BpsReadMax = a.BpsRdMax ?? 0,
                BpsWriteMax = a.BpsWrMax ?? 0,
                IopsMax = a.IopsMax ?? 0,
                IopsReadMax = a.IopsRdMax ?? 0,
                IopsWriteMax = a.IopsWrMax ?? 0,
                IopsSize = a.IopsSize ?? 0,
            });
            return ValueTask.CompletedTask;
        }));
    }
}
