using SharpBlock.Drivers.Format.LegacyAes;

namespace SharpBlock.Tests.Drivers.LegacyAes;

/// <summary>The legacy qcow and qcow2 AES scheme frozen: key from the password, plain64 IVs, one CBC chain per sector.</summary>
public class LegacyAesCipherTests
{
    [Fact]
    public void Constants_are_the_header_values()
    {
        Assert.Equal(0u, LegacyAesCipher.MethodNone);
        Assert.Equal(1u, LegacyAesCipher.MethodAes);
        Assert.Equal(2u, LegacyAesCipher.MethodLuks);
        Assert.Equal(512, LegacyAesCipher.SectorSize);
    }

    [Theory]
    [InlineData("PASS", "50415353000000000000000000000000")]
    [InlineData("0123456789abcdefXYZ", "30313233343536373839616263646566")]
    [InlineData("ab\0cd", "61620000000000000000000000000000")]
    [InlineData("", "00000000000000000000000000000000")]
    public void The_key_is_the_password_cut_at_16_bytes_and_zero_padded(string password, string keyHex) =>
        Assert.Equal(keyHex, Convert.ToHexStringLower(LegacyAesCipher.DeriveKey(password)));

    /// <summary>Known answer from `openssl enc -aes-128-cbc -nopad -K 5041...00 -iv 0500...00` over 512 bytes of 0x5a.</summary>
    [Fact]
    public void A_sector_encrypts_with_its_guest_sector_number_as_iv()
    {
        var c = new LegacyAesCipher("PASS");
        byte[] two = new byte[1024];
        Array.Fill(two, (byte)0x5a);
        c.Encrypt(4, two);
        var second = two.AsSpan(512, 512);
        Assert.Equal("0e714fa01cf93197aa350a8e6854aa72", Convert.ToHexStringLower(second[..16]));
        Assert.Equal("b17c40e59d8eecdcf499c1ef7ffc86fc", Convert.ToHexStringLower(second[^16..]));
        // Each sector is its own chain: the first (sector 4) differs from the second.
        Assert.NotEqual(two.AsSpan(0, 16).ToArray(), second[..16].ToArray());

        c.Decrypt(4, two);
        Assert.All(two, b => Assert.Equal(0x5a, b));
    }

    /// <summary>The batched paths (side-by-side encryption, one-call decryption) agree with plain per-sector CBC.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(16)]
    [InlineData(129)]
    public void Batched_paths_match_per_sector_cbc(int sectors)
    {
        var rnd = new Random(3);
        byte[] plain = new byte[sectors * 512];
        rnd.NextBytes(plain);
        byte[] data = (byte[])plain.Clone();
        var c = new LegacyAesCipher("a longer password than sixteen bytes");
        c.Encrypt(1000, data);

        using var aes = System.Security.Cryptography.Aes.Create();
        aes.Key = LegacyAesCipher.DeriveKey("a longer password than sixteen bytes");
        for (int s = 0; s < sectors; s++)
        {
            byte[] iv = new byte[16];
            BitConverter.TryWriteBytes(iv, 1000L + s);
            byte[] reference = aes.DecryptCbc(data.AsSpan(s * 512, 512), iv, System.Security.Cryptography.PaddingMode.None);
            Assert.Equal(plain.AsSpan(s * 512, 512).ToArray(), reference);
        }

        c.Decrypt(1000, data);
        Assert.Equal(plain, data);
    }

    [Fact]
    public void Partial_sectors_are_refused()
    {
        var c = new LegacyAesCipher("x");
        Assert.Throws<ArgumentException>(() => c.Encrypt(0, new byte[100]));
    }
}
