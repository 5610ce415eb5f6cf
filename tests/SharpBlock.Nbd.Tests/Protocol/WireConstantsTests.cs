using SharpBlock.Errors;
using SharpBlock.Nbd.Protocol;

namespace SharpBlock.Nbd.Tests.Protocol;

/// <summary>Freezes the protocol's numbers: a typo here breaks every client silently.</summary>
public class WireConstantsTests
{
    [Fact]
    public void Magics_and_sizes()
    {
        Assert.Equal(0x4e42444d41474943UL, NbdConstants.NbdMagic);
        Assert.Equal("NBDMAGIC", System.Text.Encoding.ASCII.GetString(BitConverter.GetBytes(NbdConstants.NbdMagic).Reverse().ToArray()));
        Assert.Equal("IHAVEOPT", System.Text.Encoding.ASCII.GetString(BitConverter.GetBytes(NbdConstants.IHaveOpt).Reverse().ToArray()));
        Assert.Equal(0x3e889045565a9UL, NbdConstants.OptionReplyMagic);
        Assert.Equal(0x25609513u, NbdConstants.RequestMagic);
        Assert.Equal(0x67446698u, NbdConstants.SimpleReplyMagic);
        Assert.Equal(0x668e33efu, NbdConstants.StructuredReplyMagic);
        Assert.Equal(18, ServerGreeting.Size);
        Assert.Equal(16, OptionHeader.Size);
        Assert.Equal(20, OptionReplyHeader.Size);
        Assert.Equal(28, RequestHeader.Size);
        Assert.Equal(16, SimpleReplyHeader.Size);
        Assert.Equal(20, StructuredReplyHeader.Size);
    }

    [Fact]
    public void Codes()
    {
        Assert.Equal(7u, (uint)NbdOption.Go);
        Assert.Equal(10u, (uint)NbdOption.SetMetaContext);
        Assert.Equal(0x80000001u, (uint)NbdOptionReplyType.ErrUnsup);
        Assert.Equal(0x80000006u, (uint)NbdOptionReplyType.ErrUnknown);
        Assert.Equal(7, (int)NbdCommand.BlockStatus);
        Assert.Equal(0x8001, (int)NbdChunkType.Error);
        Assert.Equal(256, (int)NbdTransmissionFlags.CanMultiConn);
        Assert.Equal(2048, (int)NbdTransmissionFlags.SendFastZero);
        Assert.Equal(16, (int)NbdCommandFlags.FastZero);
    }

    [Theory]
    [InlineData(Errno.EPERM, 1u)]
    [InlineData(Errno.EROFS, 1u)]
    [InlineData(Errno.EIO, 5u)]
    [InlineData(Errno.ENOMEM, 12u)]
    [InlineData(Errno.EINVAL, 22u)]
    [InlineData(Errno.ENOSPC, 28u)]
    [InlineData(Errno.EOVERFLOW, 75u)]
    [InlineData(Errno.EOPNOTSUPP, 95u)]
    [InlineData(Errno.ESHUTDOWN, 108u)]
    [InlineData(Errno.ENOENT, 5u)]
    public void Errno_mapping(Errno errno, uint wire) => Assert.Equal(wire, NbdError.FromErrno(errno));
}
