using System.Text.Json;
using SharpBlock.Qmp.Schema;
using SharpBlock.Schema;
using SharpBlock.Testing;

namespace SharpBlock.Qmp.Tests.Schema;

/// <summary>
/// query-qmp-schema over the wire: it lists exactly what query-commands lists, every name it uses is defined
/// once, types are masked as numbers in order of first use, and optional members carry "default": null.
/// </summary>
public class QmpSchemaTests
{
    [Fact]
    public async Task The_schema_lists_exactly_the_commands_query_commands_lists()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        var schema = await c.ReturnAsync("query-qmp-schema");
        var commands = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var e in schema.EnumerateArray())
        {
            if (e.GetProperty("meta-type").GetString() == "command")
                commands.Add(e.GetProperty("name").GetString()!);
        }

        var listed = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var e in (await c.ReturnAsync("query-commands")).EnumerateArray())
            listed.Add(e.GetProperty("name").GetString()!);
        Assert.Equal(listed, commands);
        Assert.Contains("query-qmp-schema", commands);
    }

    [Fact]
    public async Task Every_reference_resolves_to_one_entity_and_type_names_count_up_in_order_of_use()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        var schema = await c.ReturnAsync("query-qmp-schema");
        var names = new HashSet<string>(StringComparer.Ordinal);
        int nextMasked = 0;
        bool typesStarted = false;
        foreach (var e in schema.EnumerateArray())
        {
            string name = e.GetProperty("name").GetString()!, meta = e.GetProperty("meta-type").GetString()!;
            Assert.True(names.Add(name), name + " is listed twice");
            if (meta is "command" or "event")
            {
                Assert.False(typesStarted, "commands and events come before the types");
                continue;
            }

            typesStarted = true;
            if (meta is "enum" or "object" or "alternate")
                Assert.Equal(nextMasked++.ToString(System.Globalization.CultureInfo.InvariantCulture), name);
        }

        foreach (var e in schema.EnumerateArray())
        {
            foreach (string r in QmpSchemaJson.References(e))
                Assert.True(names.Contains(r), e.GetProperty("name").GetString() + " refers to " + r + ", which is not listed");
        }
    }

    [Fact]
    public void Only_the_served_commands_and_what_they_reach_are_described()
    {
        var schema = SchemaIntrospection.Describe(["query-version"]);
        var command = Assert.Single(schema, e => e.MetaType == SchemaMetaType.Command);
        Assert.Equal(("query-version", "0", "1"), (command.Name, command.Command!.ArgType, command.Command.RetType));
        var byName = schema.ToDictionary(e => e.Name);
        Assert.Empty(byName["0"].Object!.Members);
        var version = byName["1"].Object!.Members;
        Assert.Equal(["qemu", "package"], version.Select(m => m.Name));
        Assert.Equal("str", version[1].Type);
        Assert.Null(version[1].Default);
        var triple = byName[version[0].Type].Object!.Members;
        Assert.Equal(["major", "minor", "micro"], triple.Select(m => m.Name));
        Assert.All(triple, m => Assert.Equal("int", m.Type));
        Assert.Equal(JSONType.Int, byName["int"].Builtin!.JsonType);
    }

    [Fact]
    public async Task Optional_members_carry_a_null_default_and_integer_widths_show_as_int()
    {
        await using var h = QmpServerHarness.Start();
        await using var c = await h.ConnectAsync();
        var schema = await c.ReturnAsync("query-qmp-schema");
        var byName = new Dictionary<string, JsonElement>();
        foreach (var e in schema.EnumerateArray())
            byName[e.GetProperty("name").GetString()!] = e;
        // block-stream: device (str), optional base (str), optional speed (int), optional on-error (an enum).
        var args = byName[byName["block-stream"].GetProperty("arg-type").GetString()!];
        var members = args.GetProperty("members").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);
        Assert.False(members["device"].TryGetProperty("default", out _));
        Assert.Equal(JsonValueKind.Null, members["speed"].GetProperty("default").ValueKind);
        Assert.Equal("int", members["speed"].GetProperty("type").GetString());
        Assert.Equal("enum", byName[members["on-error"].GetProperty("type").GetString()!].GetProperty("meta-type").GetString());
        Assert.DoesNotContain(byName.Keys, n => n is "int64" or "uint64" or "size" or "int32");
    }
}
