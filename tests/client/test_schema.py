"""JSON Schema derivation from type hints and docstrings, and the `Tool` type."""

import dataclasses
import enum
import json
from typing import Any, Literal, NotRequired, Optional, TypedDict, Union

import pytest

from toolwire.client import Tool, tool
from toolwire.client._docstring import parse_docstring
from toolwire.client.schema import schema_from_function


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mixed(enum.Enum):
    NAME = "name"
    NUMBER = 3


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Route:
    start: Point
    stops: list[Point]


class Address(TypedDict):
    street: str
    zip_code: NotRequired[str]


class Options(TypedDict, total=False):
    verbose: bool


@dataclasses.dataclass
class Node:
    value: int
    children: list["Node"]


def schema_of(annotation: Any) -> dict[str, Any]:
    """The property schema a single required parameter `value: annotation` gets."""

    def function(value):  # type: ignore[no-untyped-def]
        return value

    function.__annotations__ = {"value": annotation}
    schema: dict[str, Any] = schema_from_function(function)["properties"]["value"]
    return schema


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (type(None), {"type": "null"}),
        (Any, {}),
        (Optional[int], {"anyOf": [{"type": "integer"}, {"type": "null"}]}),  # noqa: UP045
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        (Union[int, str], {"anyOf": [{"type": "integer"}, {"type": "string"}]}),  # noqa: UP007
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (list, {"type": "array"}),
        (list[Any], {"type": "array"}),
        (list[list[str]], {"type": "array", "items": {"type": "array", "items": {"type": "string"}}}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (
            tuple[int, str],
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            },
        ),
        (tuple, {"type": "array"}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (dict[str, Any], {"type": "object"}),
        (dict, {"type": "object"}),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
        (Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
        (Literal["a", 1], {"enum": ["a", 1]}),
        (Literal[True], {"type": "boolean", "enum": [True]}),
        (Unit, {"type": "string", "enum": ["celsius", "fahrenheit"]}),
        (Priority, {"type": "integer", "enum": [1, 2]}),
        (Mixed, {"enum": ["name", 3]}),
    ],
)
def test_annotation_schemas(annotation: Any, expected: dict[str, Any]) -> None:
    assert schema_of(annotation) == expected


def test_dataclass_is_an_inline_object_with_defaults() -> None:
    assert schema_of(Point) == {
        "type": "object",
        "properties": {
            "x": {"type": "number"},
            "y": {"type": "number", "default": 0.0},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["x"],
        "additionalProperties": False,
    }


def test_nested_dataclasses() -> None:
    point = schema_of(Point)
    assert schema_of(Route) == {
        "type": "object",
        "properties": {"start": point, "stops": {"type": "array", "items": point}},
        "required": ["start", "stops"],
        "additionalProperties": False,
    }


def test_typed_dicts_respect_required_keys() -> None:
    assert schema_of(Address) == {
        "type": "object",
        "properties": {"street": {"type": "string"}, "zip_code": {"type": "string"}},
        "required": ["street"],
        "additionalProperties": False,
    }
    assert schema_of(Options) == {
        "type": "object",
        "properties": {"verbose": {"type": "boolean"}},
        "additionalProperties": False,
    }


def test_tool_from_function_uses_docstring_and_defaults() -> None:
    def get_weather(location: str, unit: Unit = Unit.CELSIUS, days: int = 1, note: str | None = None) -> str:
        """Gets the weather forecast
        for a place.

        More detail that is not part of the description.

        Args:
            location: The city, e.g. "Paris".
            unit (Unit): The temperature unit,
                celsius or fahrenheit.
            days: How many days.

        Returns:
            The forecast.
        """
        return location

    weather = tool(get_weather)
    assert weather.name == "get_weather"
    assert weather.description == "Gets the weather forecast for a place."
    assert weather.function is get_weather
    assert weather.parameters_json_schema == {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": 'The city, e.g. "Paris".'},
            "unit": {
                "type": "string",
                "enum": ["celsius", "fahrenheit"],
                "description": "The temperature unit, celsius or fahrenheit.",
                "default": "celsius",
            },
            "days": {"type": "integer", "description": "How many days.", "default": 1},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["location"],
        "additionalProperties": False,
    }


def test_parameter_without_annotation_accepts_anything() -> None:
    def remember(key: str, value, flag=False):  # type: ignore[no-untyped-def]
        return key

    assert tool(remember).parameters_json_schema == {
        "type": "object",
        "properties": {"key": {"type": "string"}, "value": {}, "flag": {"default": False}},
        "required": ["key", "value"],
        "additionalProperties": False,
    }


def test_default_that_is_not_json_is_left_out() -> None:
    def place(where: Point = Point(1.0)) -> None:  # noqa: B008
        """Places something."""

    schema = tool(place).parameters_json_schema
    assert "default" not in schema["properties"]["where"]
    assert "required" not in schema


def test_function_without_parameters_or_docstring() -> None:
    def ping() -> str:
        return "pong"

    ping_tool = tool(ping)
    assert ping_tool.description == ""
    assert ping_tool.parameters_json_schema == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_decorator_forms_and_overrides() -> None:
    @tool
    def plain(city: str) -> str:
        """Plain."""
        return city

    @tool(name="renamed", description="Given description.")
    def original(city: str) -> str:
        """Docstring description."""
        return city

    assert isinstance(plain, Tool)
    assert (plain.name, plain.description) == ("plain", "Plain.")
    assert (original.name, original.description) == ("renamed", "Given description.")
    assert original("Paris") == "Paris"


def test_async_function_is_supported() -> None:
    async def fetch(url: str) -> str:
        """Fetches a URL."""
        return url

    fetch_tool = tool(fetch)
    assert fetch_tool.function is fetch
    assert fetch_tool.parameters_json_schema["required"] == ["url"]


def test_string_annotations_are_resolved() -> None:
    def count(items: "list[int]") -> int:
        return len(items)

    assert tool(count).parameters_json_schema["properties"]["items"] == {
        "type": "array",
        "items": {"type": "integer"},
    }


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda: None, "tool name '<lambda>' is invalid"),
    ],
)
def test_invalid_names_are_rejected(function: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tool(function)


def test_var_positional_is_rejected_naming_the_parameter() -> None:
    def spread(*values: int) -> None:
        pass

    with pytest.raises(TypeError, match=r"tool 'spread', parameter 'values': variadic positional"):
        tool(spread)


def test_var_keyword_is_rejected_naming_the_parameter() -> None:
    def options(**settings: str) -> None:
        pass

    with pytest.raises(TypeError, match=r"tool 'options', parameter 'settings': variadic keyword"):
        tool(options)


def test_positional_only_is_rejected() -> None:
    def only(value: int, /) -> None:
        pass

    with pytest.raises(TypeError, match=r"parameter 'value': positional-only"):
        tool(only)


def test_unsupported_annotation_is_rejected_naming_the_parameter() -> None:
    def send(payload: bytes) -> None:
        pass

    with pytest.raises(
        TypeError, match=r"tool 'send', parameter 'payload': unsupported annotation <class 'bytes'>"
    ):
        tool(send)


def test_unsupported_nested_field_names_the_field() -> None:
    @dataclasses.dataclass
    class Upload:
        data: bytes

    def upload(item: Upload) -> None:
        pass

    with pytest.raises(TypeError, match=r"parameter 'item': field 'data' of Upload: unsupported annotation"):
        tool(upload)


def test_dict_with_non_string_keys_is_rejected() -> None:
    def lookup(table: dict[int, str]) -> None:
        pass

    with pytest.raises(TypeError, match=r"parameter 'table': dict keys must be str"):
        tool(lookup)


def test_recursive_types_are_rejected() -> None:
    def walk(tree: Node) -> None:
        pass

    with pytest.raises(TypeError, match=r"Node refers to itself"):
        tool(walk)


def test_unresolvable_string_annotation_is_a_type_error() -> None:
    def broken(value: "Missing") -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(TypeError, match=r"tool 'broken': cannot resolve the type hints"):
        tool(broken)


def test_from_schema_and_to_proto() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    search = Tool.from_schema("search", "Searches.", schema)
    assert search.function is None
    definition = search.to_proto()
    assert (definition.name, definition.description) == ("search", "Searches.")
    assert json.loads(definition.parameters_json_schema) == schema
    with pytest.raises(TypeError, match="has no function"):
        search(q="x")


def test_tool_name_is_validated() -> None:
    with pytest.raises(ValueError, match="is invalid"):
        Tool.from_schema("has space", "", {"type": "object"})
    with pytest.raises(ValueError, match="is invalid"):
        Tool.from_schema("x" * 65, "", {"type": "object"})


def test_parse_docstring_sections() -> None:
    summary, descriptions = parse_docstring(
        """Summary line.

        Arguments:
            first: One.
            *rest: Two, which goes
                on and on.

        Raises:
            ValueError: never a parameter.
        """
    )
    assert summary == "Summary line."
    assert descriptions == {"first": "One.", "rest": "Two, which goes on and on."}


def test_parse_docstring_without_summary_or_args() -> None:
    assert parse_docstring(None) == ("", {})
    docstring = """
        Args:
            value: The value.
        """
    assert parse_docstring(docstring) == ("", {"value": "The value."})
