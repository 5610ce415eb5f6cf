using SharpBlock.Errors;
using SharpBlock.Nbd.Client;
using SharpBlock.Schema;

namespace SharpBlock.Nbd.Tests.Client;

/// <summary>The NBD names img accepts, read as qemu-img 7.2 reads them (defaults, decoding, what it refuses).</summary>
public class NbdFilenameTests
{
    [Theory]
    [InlineData("nbd+unix:///d0?socket=/run/s.sock", "unix:/run/s.sock", "d0")]
    [InlineData("nbd+unix://?socket=/run/s.sock", "unix:/run/s.sock", "")]
    [InlineData("nbd+unix:///d%30?socket=/run/s%20x.sock", "unix:/run/s x.sock", "d0")]
    [InlineData("nbd://127.0.0.1:10999/d0", "127.0.0.1:10999", "d0")]
    [InlineData("nbd+tcp://host/d0/x", "host:10809", "d0/x")]
    [InlineData("nbd://host:1", "host:1", "")]
    [InlineData("nbd://[::1]:5/e", "::1:5", "e")]
    [InlineData("nbd:unix:/run/s.sock", "unix:/run/s.sock", "")]
    [InlineData("nbd:unix:/run/s.sock:exportname=d0", "unix:/run/s.sock", "d0")]
    [InlineData("nbd:localhost:10999:exportname=d0", "localhost:10999", "d0")]
    public void Names_become_nbd_options(string filename, string server, string export)
    {
        var o = NbdFilename.Parse(filename)!;
        Assert.Equal(BlockdevDriver.Nbd, o.Driver);
        var s = o.Nbd!.Server;
        string where = s.Type == SocketAddressKind.Unix ? "unix:" + s.Unix!.Path : s.Inet!.Host + ":" + s.Inet.Port;
        Assert.Equal((server, export), (where, o.Nbd.Export));
    }

    [Theory]
    [InlineData("nbd:///d0", "No valid URL specified")]
    [InlineData("nbd+unix://h/d0?socket=/s", "No valid URL specified")]
    [InlineData("nbd+unix:///d0", "No valid URL specified")]
    [InlineData("nbd+unix:///d0?sock=x", "No valid URL specified")]
    [InlineData("nbd+unix:///d0?socket=/s&socket=/t", "No valid URL specified")]
    [InlineData("nbd://h:1/d0?socket=x", "No valid URL specified")]
    [InlineData("nbd://127.0.0.1:abc/d0", "No valid URL specified")]
    [InlineData("nbd:localhost", "error parsing address 'localhost'")]
    public void Malformed_names_are_refused_in_qemu_img_words(string filename, string message)
    {
        var ex = Assert.Throws<BlockException>(() => NbdFilename.Parse(filename));
        Assert.Equal((Errno.EINVAL, message), (ex.Errno, ex.Message));
    }

    [Theory]
    [InlineData("disk.qcow2")]
    [InlineData("/images/nbd:x")]
    [InlineData("nbdisk.raw")]
    public void Other_names_are_not_nbd(string filename) => Assert.Null(NbdFilename.Parse(filename));
}
