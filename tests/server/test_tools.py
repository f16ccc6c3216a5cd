"""Tool definitions and the per-call check."""

from __future__ import annotations

import json

import pytest

from toolwire.server import tools
from toolwire.server.assembler import AssembledCall
from toolwire.server.errors import InvalidRequest
from toolwire.server.tools import ToolBox, check_unique_names, parse_tool_definition

SCHEMA = '{"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]}'


def test_empty_schema_means_no_parameters():
    tool = parse_tool_definition(0, "ping", "", "")
    assert tool.parameters == {"type": "object", "properties": {}}
    assert ToolBox([tool]).check(AssembledCall("c", "ping", "{}")).error is None


@pytest.mark.parametrize(
    ("name", "schema", "message"),
    [
        ("", "", "not a valid tool name"),
        ("x" * 65, "", "not a valid tool name"),
        ("ok", "[1]", "must be a JSON object"),
        ("ok", '{"type": "string"}', "must describe an object"),
        ("ok", '{"type": "object", "required": "n"}', r"not a valid JSON Schema at required"),
        ("ok", "{", "is not valid JSON"),
        ("get_weather\n", "", "not a valid tool name"),  # `$` alone matched before a last newline
        ("ok", '{"type": "object", "maxLength": ' + "9" * 5000 + "}", "is not JSON this server reads"),
        ("ok", '{"type": "object", "properties": {"n": {"$ref": "#/$defs/gone"}}}', "points to nothing"),
        (
            "ok",
            '{"type": "object", "$defs": {"a": {}}, "prefixItems": [{"$ref": "#/$defs/b"}]}',
            r"at prefixItems/0/\$ref",
        ),
    ],
)
def test_bad_definitions_name_the_field(name, schema, message):
    with pytest.raises(InvalidRequest, match=message) as raised:
        parse_tool_definition(3, name, "", schema)
    assert str(raised.value).startswith("tools[3]")


def test_duplicate_names():
    tool = parse_tool_definition(0, "a", "", "")
    with pytest.raises(InvalidRequest, match="two tools are named 'a'"):
        check_unique_names([tool, tool])


def test_checks_explain_what_to_fix():
    box = ToolBox([parse_tool_definition(0, "count", "", SCHEMA)])
    assert box.check(AssembledCall("c", "count", '{"n": 2}')).error is None
    missing = box.check(AssembledCall("c", "count", "{}")).error
    assert missing is not None and "'n' is a required property" in missing
    too_small = box.check(AssembledCall("c", "count", '{"n": 0}')).error
    assert too_small is not None and "arguments['n']" in too_small and "minimum" in too_small
    long_garbage = box.check(AssembledCall("c", "count", "{" + "x" * 500)).error
    assert long_garbage is not None and len(long_garbage) < 400 and long_garbage.count("x") <= 200


@pytest.mark.parametrize(
    "schema",
    [
        '{"type": "object", "properties": {"a": ' * 300 + "{}" + "}}" * 300,  # deep for the schema check
        '{"type": "object", "x": ' + "[" * 5000 + "]" * 5000 + "}",  # deep for the JSON parser
    ],
)
def test_a_schema_nested_too_deeply_is_invalid_not_a_crash(schema):
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        parse_tool_definition(0, "deep", "", schema)


def test_arguments_nested_too_deeply_are_refused_to_the_model():
    recursive = '{"type": "object", "properties": {"a": {"$ref": "#"}}}'
    toolbox = ToolBox([parse_tool_definition(0, "deep", "", recursive)])
    too_deep_to_parse = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"
    too_deep_to_validate = '{"a": ' * 900 + "{}" + "}" * 900  # parses, but the $ref recursion is too deep
    for arguments in (too_deep_to_parse, too_deep_to_validate):
        verdict = toolbox.check(AssembledCall("c", "deep", arguments))
        assert "nested too deeply" in (verdict.error or "")


def test_a_remembered_verdict_still_names_this_request_s_field_and_tool():
    bad = '{"type": "object", "required": "remembered"}'
    for position, name in ((0, "first"), (5, "second")):
        with pytest.raises(InvalidRequest, match="not a valid JSON Schema at required") as raised:
            parse_tool_definition(position, name, "", bad)
        assert str(raised.value).startswith(f"tools[{position}].parameters_json_schema of tool {name!r}")


def test_the_same_schema_is_checked_against_the_meta_schema_once():
    schema = '{"type": "object", "properties": {"once": {"type": "string"}}}'
    before = tools._cached_schema_problem.cache_info()
    first = parse_tool_definition(0, "a", "", schema)
    second = parse_tool_definition(0, "a", "", schema)
    after = tools._cached_schema_problem.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    assert first.parameters == second.parameters
    assert first.parameters is not second.parameters  # each chat gets its own copy


def test_a_schema_too_large_to_remember_is_still_checked():
    padding = "x" * tools.MAX_CACHED_SCHEMA_CHARS
    large = json.dumps({"type": "object", "description": padding, "required": "n"})
    before = tools._cached_schema_problem.cache_info()
    with pytest.raises(InvalidRequest, match="not a valid JSON Schema at required"):
        parse_tool_definition(0, "large", "", large)
    assert tools._cached_schema_problem.cache_info().currsize == before.currsize


def test_a_tool_s_validator_is_compiled_when_first_called_and_once(monkeypatch):
    compiled: list[object] = []
    real = tools.jsonschema.Draft202012Validator

    def counting(schema, **options):
        compiled.append(schema)
        return real(schema, **options)

    offered = [parse_tool_definition(index, f"tool_{index}", "", SCHEMA) for index in range(5)]
    monkeypatch.setattr(tools.jsonschema, "Draft202012Validator", counting)
    box = ToolBox(offered)
    assert compiled == []  # offering tools costs nothing until the model calls one
    assert box.check(AssembledCall("c1", "tool_3", '{"n": 2}')).error is None
    assert box.check(AssembledCall("c2", "tool_3", "{}")).error is not None
    unknown = box.check(AssembledCall("c3", "nope", "{}")).error
    assert unknown is not None and "tool_0, tool_1, tool_2, tool_3, tool_4" in unknown
    assert len(compiled) == 1


@pytest.mark.parametrize(
    "reference", ["file:///etc/hostname", "http://127.0.0.1:9/schema.json", "other.json"]
)
def test_a_reference_outside_the_schema_is_refused_and_never_fetched(reference, monkeypatch):
    def fetch(*arguments, **options):
        raise AssertionError(f"the server fetched a $ref: {arguments}")

    monkeypatch.setattr("urllib.request.urlopen", fetch)
    schema = json.dumps({"type": "object", "properties": {"n": {"$ref": reference}}})
    with pytest.raises(InvalidRequest, match=r"may only point inside the schema") as raised:
        parse_tool_definition(0, "t", "", schema)
    assert "at properties/n/$ref" in str(raised.value) and reference in str(raised.value)
    # A validator made for such a schema anyway (it was never checked) refuses rather than fetches.
    toolbox = ToolBox([tools.ToolDefinition("t", "", json.loads(schema))])
    with pytest.raises(InvalidRequest, match="points to nothing in the schema"):
        toolbox.check(AssembledCall("c", "t", '{"n": 1}'))


def test_references_inside_the_schema_and_data_that_looks_like_one_are_accepted():
    schema = {
        "type": "object",
        "$defs": {"city": {"type": "string", "minLength": 2}},
        "properties": {
            "to": {"$ref": "#/$defs/city"},
            "via": {"type": "array", "items": {"$ref": "#/$defs/city"}},
            "mode": {"enum": [{"$ref": "not a reference: data"}, "car"]},
        },
    }
    toolbox = ToolBox([parse_tool_definition(0, "route", "", json.dumps(schema))])
    assert toolbox.check(AssembledCall("c", "route", '{"to": "Oslo", "via": ["Bergen"]}')).error is None
    too_short = toolbox.check(AssembledCall("c", "route", '{"to": "O"}')).error
    assert too_short is not None and "arguments['to']" in too_short


def test_arguments_with_a_number_too_long_to_read_go_back_to_the_model():
    toolbox = ToolBox([parse_tool_definition(0, "count", "", SCHEMA)])
    verdict = toolbox.check(AssembledCall("c", "count", '{"n": ' + "9" * 5000 + "}"))
    assert (
        verdict.error is not None
        and "could not be read" in verdict.error
        and "smaller numbers" in verdict.error
    )
