"""Runs one tool call: JSON arguments → the function's parameter types → the function → result text."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import json
import logging
import types
import typing
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


async def run_tool(function: Callable[..., Any], name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
    """Runs `function` with the arguments as keywords; returns (content, is_error).

    Async functions are awaited; sync functions run in a worker thread. The return value becomes
    the content (a str as is, anything else as JSON); an exception becomes an error result.
    """
    try:
        keyword_arguments = convert_arguments(function, arguments)
        if inspect.iscoroutinefunction(function):
            result = await function(**keyword_arguments)
        else:
            result = await asyncio.to_thread(function, **keyword_arguments)
            if inspect.isawaitable(result):
                result = await result
        return result_content(result), False
    except Exception as error:
        log.info("tool %s raised %s", name, type(error).__name__, exc_info=True)
        return f"{type(error).__name__}: {error}", True


def result_content(result: Any) -> str:
    """A tool's return value as text for the model: a str as is, anything else as JSON."""
    if isinstance(result, str):
        return result
    return json.dumps(result, default=_json_default)


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(
        f"the tool's result holds a {type(value).__name__!r} value, which is not JSON-serialisable"
    )


def convert_arguments(function: Callable[..., Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """Converts JSON arguments to the types the function's parameters are annotated with.

    Enums, dataclasses and tuples (also nested in lists, dicts and optionals) are built from their
    JSON form; everything else is passed as parsed. Without resolvable hints, nothing is converted.
    """
    try:
        parameters = inspect.signature(function, eval_str=True).parameters
    except (TypeError, ValueError, NameError, SyntaxError):
        return dict(arguments)
    converted: dict[str, Any] = {}
    for name, value in arguments.items():
        parameter = parameters.get(name)
        annotation = (
            Any if parameter is None or parameter.annotation is parameter.empty else parameter.annotation
        )
        converted[name] = from_json(value, annotation)
    return converted


def from_json(value: Any, annotation: Any) -> Any:
    """Builds a value of type `annotation` from its JSON form, as far as the type asks for it."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        return from_json(value, arguments[0])
    if origin in (typing.Union, types.UnionType):
        return _from_json_union(value, arguments)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(value)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        hints = typing.get_type_hints(annotation)
        return annotation(**{key: from_json(item, hints.get(key, Any)) for key, item in value.items()})
    if isinstance(annotation, type) and typing.is_typeddict(annotation) and isinstance(value, dict):
        hints = typing.get_type_hints(annotation)
        return {key: from_json(item, hints.get(key, Any)) for key, item in value.items()}
    if origin is list and arguments and isinstance(value, list):
        return [from_json(item, arguments[0]) for item in value]
    if (annotation is tuple or origin is tuple) and isinstance(value, list):
        return _from_json_tuple(value, arguments)
    if origin is dict and len(arguments) == 2 and isinstance(value, dict):
        return {key: from_json(item, arguments[1]) for key, item in value.items()}
    return value


def _from_json_union(value: Any, members: tuple[Any, ...]) -> Any:
    """Converts with the union's only non-None member; leaves ambiguous unions alone."""
    if value is None:
        return None
    non_null = [member for member in members if member is not type(None)]
    return from_json(value, non_null[0]) if len(non_null) == 1 else value


def _from_json_tuple(value: list[Any], arguments: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(arguments) == 2 and arguments[1] is Ellipsis:
        return tuple(from_json(item, arguments[0]) for item in value)
    if len(arguments) == len(value):
        return tuple(from_json(item, argument) for item, argument in zip(value, arguments, strict=True))
    return tuple(value)
