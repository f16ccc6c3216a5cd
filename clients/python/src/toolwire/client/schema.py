"""Tools: a name, a description, a JSON Schema for the arguments, and optionally the function to run.

`tool()` derives all of it from a Python function: the JSON Schema from the parameters' type hints,
the description from the docstring's first paragraph, and each parameter's description from a
Google-style `Args:` section.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

from toolwire.client._docstring import parse_docstring
from toolwire.v1 import chat_pb2

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SIMPLE_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_MISSING = object()
_SUPPORTED = (
    "str, int, float, bool, None, Optional/unions, list[T], tuple, dict[str, T], Literal, Enum, "
    "TypedDict, dataclasses and Any"
)


@dataclass(frozen=True)
class Tool:
    """A tool the model may call.

    Attributes:
        name: 1 to 64 letters, digits, `_` or `-`.
        description: What the tool does, for the model.
        parameters_json_schema: A JSON Schema object describing the keyword arguments.
        function: What runs the tool (sync or async), called with the arguments as keywords;
            None when the caller answers the tool itself (`Client.chat_session`).
    """

    name: str
    description: str
    parameters_json_schema: dict[str, Any]
    function: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not _TOOL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} is invalid: use 1 to 64 letters, digits, '_' or '-'")

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        parameters_json_schema: dict[str, Any],
        function: Callable[..., Any] | None = None,
    ) -> Tool:
        """A tool with a hand-written JSON Schema; without `function`, the caller answers it."""
        return cls(name, description, parameters_json_schema, function)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the function directly, so a decorated function stays usable as one."""
        if self.function is None:
            raise TypeError(f"tool {self.name!r} has no function to call")
        return self.function(*args, **kwargs)

    def to_proto(self) -> chat_pb2.ToolDefinition:
        """The proto `ToolDefinition`."""
        return chat_pb2.ToolDefinition(
            name=self.name,
            description=self.description,
            parameters_json_schema=json.dumps(self.parameters_json_schema),
        )


@overload
def tool(
    function: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> Tool: ...


@overload
def tool(
    function: None = None, *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Makes a `Tool` from a function; usable as `@tool`, `@tool(name=...)` or `tool(function)`.

    Args:
        function: The function to wrap, sync or async.
        name: The tool's name; defaults to the function's `__name__`.
        description: The tool's description; defaults to the docstring's first paragraph.

    Raises:
        TypeError: A parameter is `*args`, `**kwargs` or positional-only, or has an annotation
            with no JSON Schema equivalent.
    """

    def wrap(wrapped: Callable[..., Any]) -> Tool:
        tool_name = name or getattr(wrapped, "__name__", "")
        if not tool_name:
            raise TypeError(f"{wrapped!r} has no __name__: pass tool(..., name=...)")
        summary, parameter_descriptions = parse_docstring(inspect.getdoc(wrapped))
        schema = schema_from_function(wrapped, parameter_descriptions, tool_name=tool_name)
        return Tool(tool_name, summary if description is None else description, schema, wrapped)

    if function is None:
        return wrap
    return wrap(function)


def schema_from_function(
    function: Callable[..., Any], descriptions: dict[str, str] | None = None, *, tool_name: str = ""
) -> dict[str, Any]:
    """The JSON Schema of a function's keyword arguments, from its type hints."""
    where = f"tool {tool_name or getattr(function, '__name__', function)!r}"
    try:
        signature = inspect.signature(function, eval_str=True)
    except (NameError, SyntaxError) as error:
        raise TypeError(f"{where}: cannot resolve the type hints: {error}") from None
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.POSITIONAL_ONLY):
            raise TypeError(
                f"{where}, parameter {parameter.name!r}: {parameter.kind.description} parameters are not "
                "supported; tools are called with keyword arguments, so name each argument"
            )
        try:
            schema = {} if parameter.annotation is parameter.empty else _schema_for(parameter.annotation, ())
        except TypeError as error:
            raise TypeError(f"{where}, parameter {parameter.name!r}: {error}") from None
        description = (descriptions or {}).get(parameter.name)
        properties[parameter.name] = _annotate(schema, description, parameter.default, parameter.empty)
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    return _object_schema(properties, required)


def _annotate(schema: dict[str, Any], description: str | None, default: Any, missing: Any) -> dict[str, Any]:
    """Adds a description and a JSON-serialisable default to a property schema."""
    if description:
        schema["description"] = description
    if default is not missing:
        is_json, value = _as_json(default)
        if is_json:
            schema["default"] = value
    return schema


def _as_json(value: Any) -> tuple[bool, Any]:
    """(True, the value as JSON data) when the value is JSON-serialisable, else (False, None)."""
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        return True, json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return False, None


def _object_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _schema_for(annotation: Any, seen: tuple[type, ...]) -> dict[str, Any]:
    """The JSON Schema of one annotation; raises TypeError for annotations it cannot express."""
    if annotation is Any:
        return {}
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    if isinstance(annotation, type) and annotation in _SIMPLE_TYPES:
        return {"type": _SIMPLE_TYPES[annotation]}
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _schema_for(arguments[0], seen)
    if origin is typing.Literal:
        return _values_schema(list(arguments))
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema_for(argument, seen) for argument in arguments]}
    if annotation is list or origin is list:
        return _array_schema(arguments[0] if arguments else Any, seen)
    if annotation is tuple or origin is tuple:
        return _tuple_schema(arguments, seen)
    if annotation is dict or origin is dict:
        return _dict_schema(arguments, seen)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _values_schema([member.value for member in annotation])
    if isinstance(annotation, type) and (
        typing.is_typeddict(annotation) or dataclasses.is_dataclass(annotation)
    ):
        return _class_schema(annotation, seen)
    raise TypeError(f"unsupported annotation {annotation!r}; supported are {_SUPPORTED}")


def _values_schema(values: list[Any]) -> dict[str, Any]:
    """The schema of a Literal or an Enum: its values, and their type when they share one."""
    json_values = []
    for value in values:
        is_json, json_value = _as_json(value)
        if not is_json:
            raise TypeError(f"the value {value!r} is not JSON-serialisable")
        json_values.append(json_value)
    types_of_values = {_json_type(value) for value in json_values}
    if len(types_of_values) == 1 and None not in types_of_values:
        return {"type": types_of_values.pop(), "enum": json_values}
    return {"enum": json_values}


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _array_schema(item: Any, seen: tuple[type, ...]) -> dict[str, Any]:
    item_schema = _schema_for(item, seen)
    return {"type": "array", "items": item_schema} if item_schema else {"type": "array"}


def _tuple_schema(arguments: tuple[Any, ...], seen: tuple[type, ...]) -> dict[str, Any]:
    if not arguments:
        return {"type": "array"}
    if len(arguments) == 2 and arguments[1] is Ellipsis:
        return _array_schema(arguments[0], seen)
    return {
        "type": "array",
        "prefixItems": [_schema_for(argument, seen) for argument in arguments],
        "minItems": len(arguments),
        "maxItems": len(arguments),
    }


def _dict_schema(arguments: tuple[Any, ...], seen: tuple[type, ...]) -> dict[str, Any]:
    if not arguments:
        return {"type": "object"}
    if arguments[0] is not str:
        raise TypeError(f"dict keys must be str (JSON object keys are strings), not {arguments[0]!r}")
    value_schema = _schema_for(arguments[1], seen)
    return {"type": "object", "additionalProperties": value_schema} if value_schema else {"type": "object"}


def _class_schema(cls: type, seen: tuple[type, ...]) -> dict[str, Any]:
    """The object schema of a TypedDict or a dataclass, its fields inlined."""
    if cls in seen:
        raise TypeError(f"{cls.__name__} refers to itself; recursive types are not supported")
    try:
        hints = typing.get_type_hints(cls)
    except NameError as error:
        raise TypeError(f"cannot resolve the type hints of {cls.__name__}: {error}") from None
    if dataclasses.is_dataclass(cls):
        fields = [field for field in dataclasses.fields(cls) if field.init]
        names = [field.name for field in fields]
        defaults = {field.name: field.default for field in fields if field.default is not dataclasses.MISSING}
        optional = {field.name for field in fields if field.default is not dataclasses.MISSING}
        optional |= {field.name for field in fields if field.default_factory is not dataclasses.MISSING}
    else:
        names = list(hints)
        defaults = {}
        optional = set(names) - set(getattr(cls, "__required_keys__", names))
    properties: dict[str, Any] = {}
    for name in names:
        try:
            schema = _schema_for(hints[name], (*seen, cls))
        except TypeError as error:
            raise TypeError(f"field {name!r} of {cls.__name__}: {error}") from None
        properties[name] = _annotate(schema, None, defaults.get(name, _MISSING), _MISSING)
    return _object_schema(properties, [name for name in names if name not in optional])
