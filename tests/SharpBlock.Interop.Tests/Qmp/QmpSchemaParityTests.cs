using SharpBlock.Testing;

namespace SharpBlock.Interop.Tests.Qmp;

/// <summary>
/// Our query-qmp-schema against qemu-storage-daemon 7.2's, asked in the same run: every command and event
/// both serve has the same shape (members, optionality, types, tags, variants, enum values) except where
/// the seed schema, which we keep, differs from 7.2. That list is frozen here, so a new departure fails.
/// </summary>
public class QmpSchemaParityTests
{
    // Where the seed (QEMU 2.1) wire format is kept on purpose and 7.2 differs.
    private static readonly string[] SeedDifferences =
    [
        "query-block(ret)[].inserted.encryption_key_missing: not in 7.2",
        "query-block(ret)[].inserted.image.format-specific{qcow2}.data.compression-type: optional here, mandatory in 7.2",
        "query-block(ret)[].inserted.image.format-specific{qcow2}.data.compression-type: builtin here, enum in 7.2",
        "query-block(ret)[].inserted.image.format-specific{qcow2}.data.refcount-bits: optional here, mandatory in 7.2",
        "query-block(ret)[].inserted.image.format-specific{qcow2}.data.encrypt.format: builtin here, enum in 7.2",
        "query-block(ret)[].inserted.image.format-specific{qcow2}.data.encrypt: tag none here, format in 7.2",
        "query-block(ret)[].dirty-bitmaps: not in 7.2",
        "block-commit(arg).top: mandatory here, optional in 7.2",
        "blockdev-add(arg).options: not in 7.2",
        "blockdev-add(arg): tag none here, driver in 7.2",
        // blockdev-create names its drivers with the seed's BlockdevDriver (2.1's host_floppy, tftp and cow
        // included), and its file nodes are the seed's BlockdevOptions (reached first through parallels' file).
        "blockdev-create(arg).options.driver: value 'host_floppy' not in 7.2",
        "blockdev-create(arg).options.driver: value 'tftp' not in 7.2",
        "blockdev-create(arg).options.driver: value 'cow' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0.id: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0.cache.writeback: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0.aio: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0.rerror: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0.werror: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0: variant 'host_floppy' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{http}.filename: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{http}.url: optional here, mandatory in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{http}.sslverify: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{https}.filename: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{https}.url: optional here, mandatory in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{ftp}.filename: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{ftp}.url: optional here, mandatory in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{ftp}.sslverify: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{ftp}.cookie: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{ftps}.filename: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{ftps}.url: optional here, mandatory in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{ftps}.cookie: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0: variant 'tftp' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{blkdebug}.inject-error[].event: value 'l1_grow.alloc_table' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{blkdebug}.inject-error[].event: value 'l1_grow.write_table' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{blkdebug}.inject-error[].event: value 'l1_grow.activate_table' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{blkdebug}.inject-error[].event: value 'l2_alloc.cow_read' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{blkdebug}.inject-error[].event: value 'l2_alloc.write' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{blkdebug}.inject-error[].event: value 'refblock_alloc.hookup' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{blkdebug}.inject-error[].event: value 'refblock_alloc.write' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{blkdebug}.inject-error[].event: value 'refblock_alloc.write_blocks' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{blkdebug}.inject-error[].event: value 'refblock_alloc.write_table' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{blkdebug}.inject-error[].event: value 'refblock_alloc.switch_table' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0: variant 'cow' not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{qcow}.encrypt.key-secret: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{qcow}.encrypt: tag none here, format in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{qcow2}.encrypt.key-secret: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{qcow2}.encrypt: tag none here, format in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{nbd}.server{inet}.data: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{nbd}.server{unix}.data: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{nbd}.server{fd}.data: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{rbd}.server[].to: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{rbd}.server[].ipv4: not in 7.2",
        "blockdev-create(arg).options{parallels}.file|0{rbd}.server[].ipv6: not in 7.2",
        "blockdev-create(arg).options: variant 'host_floppy' not in 7.2",
        "blockdev-create(arg).options: variant 'tftp' not in 7.2",
        "blockdev-create(arg).options: variant 'cow' not in 7.2",
        "BLOCK_IO_ERROR(arg).reason: optional here, mandatory in 7.2",
    ];

    // Seed commands and events qemu-storage-daemon does not have (it has no guest devices), and QEMU's getfd
    // and closefd, which its system emulator's monitor has and its storage daemon leaves out.
    private static readonly string[] OnlyOurs = ["block_passwd", "block_set_io_throttle", "eject", "cont", "getfd", "closefd", "change", "DEVICE_TRAY_MOVED"];

    [Fact]
    public async Task Every_command_and_event_both_serve_has_qemu_storage_daemons_shape()
    {
        using var dir = new TempDir();
        await using var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock"));
        await using var d = await QmpHarness.StartAsync();
        var ours = await d.Client.ReturnAsync("query-qmp-schema");
        var theirs = await qsd.Client.ReturnAsync("query-qmp-schema");

        var (differences, onlyOurs) = SchemaShape.Compare(ours, theirs);
        Assert.Equal(SeedDifferences, differences);
        Assert.Equal(OnlyOurs, onlyOurs);
    }

    [Fact]
    public async Task The_schema_of_the_schema_is_7_2s_in_both_directions()
    {
        using var dir = new TempDir();
        await using var qsd = await QemuStorageDaemon.StartAsync(dir.File("qsd.sock"));
        await using var d = await QmpHarness.StartAsync();
        var ours = await d.Client.ReturnAsync("query-qmp-schema");
        var theirs = await qsd.Client.ReturnAsync("query-qmp-schema");

        // Our SchemaInfo lacks nothing of theirs either: a client that parses 7.2's answer parses ours.
        Assert.Empty(SchemaShape.Compare(Only(ours, "query-qmp-schema"), theirs).Differences);
        Assert.Empty(SchemaShape.Compare(Only(theirs, "query-qmp-schema"), ours).Differences);
    }

    /// <summary>A schema answer cut down to one command and the types it reaches (names as given).</summary>
    private static System.Text.Json.JsonElement Only(System.Text.Json.JsonElement schema, string command)
    {
        var all = QmpSchemaJson.Index(schema);
        var keep = new List<System.Text.Json.JsonElement>();
        var seen = new HashSet<string>();
        var todo = new Stack<string>([command]);
        while (todo.Count > 0)
        {
            string n = todo.Pop();
            if (!seen.Add(n))
                continue;
            var e = all[n];
            keep.Add(e);
            foreach (string t in QmpSchemaJson.References(e))
                todo.Push(t);
        }

        return System.Text.Json.JsonSerializer.SerializeToElement(keep);
    }
}
