using System.Security.Cryptography;
using System.Text;
using SharpBlock.Errors;
using SharpBlock.Graph;

namespace SharpBlock.Tests.Graph;

/// <summary>Secrets encrypted under a master key (keyid, iv), as a management tool passes them to QEMU.</summary>
public class SecretLoaderTests
{
    private static (SecretStore Store, string Cipher, string Iv) Encrypted(string plain)
    {
        var store = new SecretStore();
        byte[] key = RandomNumberGenerator.GetBytes(SecretLoader.MasterKeyBytes);
        store.Add("master", key);
        byte[] iv = RandomNumberGenerator.GetBytes(SecretLoader.IvBytes);
        using var aes = Aes.Create();
        aes.Key = key;
        byte[] cipher = aes.EncryptCbc(Encoding.UTF8.GetBytes(plain), iv, PaddingMode.PKCS7);
        return (store, Convert.ToBase64String(cipher), Convert.ToBase64String(iv));
    }

    [Theory]
    [InlineData("pass")]
    [InlineData("exactly sixteen!")]
    [InlineData("")]
    public void Decrypts_base64_ciphertext_with_the_master_key(string plain)
    {
        var (store, cipher, iv) = Encrypted(plain);
        Assert.Equal(plain, Encoding.UTF8.GetString(SecretLoader.Load(store, cipher, null, base64: true, "master", iv)));
    }

    [Fact]
    public void A_wrong_key_is_caught_by_the_padding_check_or_yields_other_bytes()
    {
        var (_, cipher, iv) = Encrypted("pass");
        var other = new SecretStore();
        other.Add("master", new byte[SecretLoader.MasterKeyBytes]);
        try
        {
            Assert.NotEqual("pass", Encoding.UTF8.GetString(SecretLoader.Load(other, cipher, null, true, "master", iv)));
        }
        catch (BlockException ex)
        {
            Assert.StartsWith("Incorrect number of padding bytes", ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Plain_and_base64_secrets_and_the_file_form()
    {
        var store = new SecretStore();
        Assert.Equal("abc", Encoding.UTF8.GetString(SecretLoader.Load(store, "YWJj", null, true, null, null)));
        Assert.Equal("abc", Encoding.UTF8.GetString(SecretLoader.Load(store, "abc", null, false, null, null)));
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "from file\n");
            Assert.Equal("from file\n", Encoding.UTF8.GetString(SecretLoader.Load(store, null, path, false, null, null)));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
