"""Tool definitions and the check every tool call passes before it reaches the client.

A call to an unknown tool, arguments that are not a JSON object, or arguments that break the
tool's schema never reach the client: `ToolBox.check` returns the error text the model gets back
instead (repair), written so the model can correct itself.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema
import referencing.exceptions
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from toolwire.server.assembler import AssembledCall
from toolwire.server.conversation import ToolDefinition
from toolwire.server.errors import InvalidRequest

_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EMPTY_SCHEMA: dict[str, object] = {"type": "object", "properties": {}}
_SHOWN_ARGUMENTS = 200
_TOO_DEEP = "is nested too deeply to check: flatten it (a tool schema rarely needs more than a few levels)"
_NO_RETRIEVAL: Registry[Any] = Registry()
"""The schemas a validator may reach besides the tool's own: none. Without an explicit registry,
jsonschema fetches a `$ref` it cannot resolve inside the schema with `urlopen`, on the event loop
(a file on the server's host, any URL: a client could make the server read or request them)."""
_DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})
"""Keywords whose values are data, not schemas: a `$ref` inside them is not a reference."""


def parse_tool_definition(position: int, name: str, description: str, schema_text: str) -> ToolDefinition:
    """Checks one tool definition from a request; raises InvalidRequest naming the field to fix."""
    where = f"tools[{position}]"
    if not _TOOL_NAME.fullmatch(name):
        raise InvalidRequest(
            f"{where}.name {name!r} is not a valid tool name: use 1 to 64 letters, digits, '_' or '-'"
        )
    if not schema_text.strip():
        return ToolDefinition(name, description, dict(_EMPTY_SCHEMA))
    problem = (
        _cached_schema_problem(schema_text)
        if len(schema_text) <= MAX_CACHED_SCHEMA_CHARS
        else _schema_problem(schema_text)
    )
    if problem is not None:
        raise InvalidRequest(f"{where}.parameters_json_schema of tool {name!r} {problem}")
    return ToolDefinition(name, description, json.loads(schema_text))


MAX_CACHED_SCHEMA_CHARS = 16 * 1024
"""Schemas up to this size have their verdict cached (`_cached_schema_problem`): at most
`_SCHEMA_CACHE_SIZE` times this much text is held, whatever clients send."""

_SCHEMA_CACHE_SIZE = 512


def _schema_problem(schema_text: str) -> str | None:
    """What is wrong with a tool's parameter schema (the end of an error message), or None.

    Checking a schema against the JSON Schema 2020-12 meta-schema costs ~1 ms of CPU (jsonschema
    resolves the meta-schema's dynamic references every time), more than all the rest of a chat's
    start; applications send the same tool definitions with every chat, hence the cache below.
    """
    try:
        schema = json.loads(schema_text)
    except RecursionError:
        return _TOO_DEEP
    except json.JSONDecodeError as error:
        return f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    except ValueError as error:  # an integer of over 4,300 digits
        return f"is not JSON this server reads: {error}"
    if not isinstance(schema, dict):
        return "must be a JSON object"
    if schema.get("type", "object") != "object":
        return f'must describe an object ("type": "object"), not {schema.get("type")!r}'
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except RecursionError:
        return _TOO_DEEP
    except jsonschema.SchemaError as error:
        path = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return f"is not a valid JSON Schema at {path}: {error.message}"
    return _reference_problem(schema)


def _reference_problem(schema: dict[str, object]) -> str | None:
    """The first `$ref` (or `$dynamicRef`) that does not point to a part of the schema itself."""
    resource: Resource[Any] = Resource.from_contents(schema, default_specification=DRAFT202012)
    resolver = Registry().with_resource("", resource).resolver()
    for path, reference in _references(schema, ()):
        where = "/".join(path)
        if not reference.startswith("#"):
            return (
                f'has a reference to {reference!r} at {where}: a "$ref" may only point inside the schema '
                '(e.g. "#/$defs/address"); put the schema it names under "$defs"'
            )
        try:
            resolver.lookup(reference)
        except referencing.exceptions.Unresolvable:
            return f"has a reference to {reference!r} at {where}, which points to nothing in the schema"
    return None


def _references(node: object, path: tuple[str, ...]) -> Iterable[tuple[tuple[str, ...], str]]:
    """Each `$ref` and `$dynamicRef` of a schema, with the path to it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield (*path, key), value
            elif key not in _DATA_KEYWORDS:
                yield from _references(value, (*path, str(key)))
    elif isinstance(node, list):
        for position, item in enumerate(node):
            yield from _references(item, (*path, str(position)))


_cached_schema_problem = functools.lru_cache(maxsize=_SCHEMA_CACHE_SIZE)(_schema_problem)
"""`_schema_problem`, remembered per schema text (the verdict only: each chat parses its own copy)."""


def check_unique_names(tools: Iterable[ToolDefinition]) -> None:
    """Raises InvalidRequest when two tools share a name."""
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise InvalidRequest(f"two tools are named {tool.name!r}: tool names must be unique")
        seen.add(tool.name)


@dataclass(slots=True, frozen=True)
class Verdict:
    """The outcome of checking one call: `error` is None when the call may go to the client."""

    error: str | None
    arguments_json: str


class ToolBox:
    """The tools of one chat; a tool's validator is compiled when the model first calls it (a
    validator costs ~60 µs of CPU here, and most chats call few of the tools they offer)."""

    def __init__(self, tools: Iterable[ToolDefinition]) -> None:
        self._schemas = {tool.name: tool.parameters for tool in tools}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    def check(self, call: AssembledCall) -> Verdict:
        """Checks the tool exists and the arguments are a JSON object matching its schema."""
        validator = self._validator(call.name)
        if validator is None:
            known = ", ".join(sorted(self._schemas)) or "none"
            return Verdict(
                f"Unknown tool {call.name!r}. The available tools are: {known}.", call.arguments_json
            )
        try:
            arguments = json.loads(call.arguments_json)
        except RecursionError:
            return Verdict(
                f"The arguments for tool {call.name!r} are nested too deeply: "
                f"{_shorten(call.arguments_json)}. Call the tool again with flatter arguments.",
                call.arguments_json,
            )
        except json.JSONDecodeError as error:
            return Verdict(
                f"The arguments for tool {call.name!r} are not valid JSON ({error.msg} at position "
                f"{error.pos}): {_shorten(call.arguments_json)}. Call the tool again with a JSON object.",
                call.arguments_json,
            )
        except ValueError as error:  # an integer of over 4,300 digits
            return Verdict(
                f"The arguments for tool {call.name!r} could not be read ({error}): "
                f"{_shorten(call.arguments_json)}. Call the tool again with smaller numbers.",
                call.arguments_json,
            )
        if not isinstance(arguments, dict):
            return Verdict(
                f"The arguments for tool {call.name!r} must be a JSON object, "
                f"not {type(arguments).__name__}: {_shorten(call.arguments_json)}.",
                call.arguments_json,
            )
        try:
            problem = best_match(validator.iter_errors(arguments))
        except RecursionError:
            return Verdict(
                f"The arguments for tool {call.name!r} are nested too deeply to check against its schema. "
                "Call the tool again with flatter arguments.",
                call.arguments_json,
            )
        except referencing.exceptions.Unresolvable as error:  # a "$ref" relative to a nested "$id"
            raise InvalidRequest(
                f"the parameters_json_schema of tool {call.name!r} has a reference that points to "
                f'nothing in the schema ({error}): point each "$ref" inside the schema'
            ) from None
        if problem is not None:
            path = "".join(f"[{part!r}]" for part in problem.absolute_path) or " (the top level)"
            return Verdict(
                f"The arguments for tool {call.name!r} do not match its schema: at arguments{path}, "
                f"{problem.message}. Call the tool again with corrected arguments.",
                call.arguments_json,
            )
        return Verdict(None, call.arguments_json)

    def _validator(self, name: str) -> jsonschema.protocols.Validator | None:
        validator = self._validators.get(name)
        if validator is None and name in self._schemas:
            validator = jsonschema.Draft202012Validator(
                self._schemas[name], format_checker=None, registry=_NO_RETRIEVAL
            )
            self._validators[name] = validator
        return validator


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN_ARGUMENTS else text[:_SHOWN_ARGUMENTS] + "…"
