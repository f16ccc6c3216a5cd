"""The scripted provider: deterministic models played from JSON scripts, the default and the test double.

`scripted/<name>` plays `<name>.json`: the Nth model call of a chat plays turn N. `scripted/echo`
needs no file: it streams the last user message back word by word. Scripts ship in the package
(`toolwire/server/scripts/`) and more can be added from a directory (`toolwire serve --scripts DIR`),
which wins on a name clash. The format is documented in docs/scripted-model.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import re
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from toolwire.server.conversation import ModelCall, Role
from toolwire.server.errors import FailedPrecondition, ModelError, ModelNotFound
from toolwire.server.events import ModelEvent, StopReason, TextDelta, ToolCallFragment, TurnEnd, Usage
from toolwire.server.models.base import ModelInfo

PROVIDER_NAME = "scripted"
ECHO_NAME = "echo"
SCRIPT_ERROR_CODES = frozenset(
    {
        "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    }
)  # fmt: skip
_FINISH_REASONS = {reason.value: reason for reason in StopReason}
_WORD = re.compile(r"\s*\S+\s*")


class ScriptError(ValueError):
    """A script file is malformed; the message names the file and the place."""


@dataclass(slots=True, frozen=True)
class Delay:
    """A pause in the stream."""

    seconds: float


@dataclass(slots=True, frozen=True)
class Fault:
    """The model call fails here with a status code and message."""

    code: str
    message: str


ScriptItem = TextDelta | ToolCallFragment | Delay | Fault


@dataclass(slots=True, frozen=True)
class ScriptTurn:
    """What one model call plays."""

    items: tuple[ScriptItem, ...]
    stop_reason: StopReason
    usage: Usage | None


@dataclass(slots=True, frozen=True)
class Script:
    """A parsed script."""

    name: str
    description: str
    turns: tuple[ScriptTurn, ...]


@dataclass(slots=True)
class Activity:
    """What the scripted models did, for tests and debugging (bounded)."""

    streams_started: int = 0
    streams_completed: int = 0
    streams_closed_early: int = 0
    calls: collections.deque[ModelCall] = field(default_factory=lambda: collections.deque(maxlen=200))


def parse_script(name: str, document: object, origin: str) -> Script:
    """Parses a script document; raises ScriptError naming `origin` and the bad place."""
    if not isinstance(document, dict) or not isinstance(document.get("turns"), list) or not document["turns"]:
        raise ScriptError(f"{origin}: a script is an object with a non-empty list 'turns'")
    turns = tuple(
        _parse_turn(turn, f"{origin}: turns[{index}]") for index, turn in enumerate(document["turns"])
    )
    description = document.get("description", f"scripted model playing {name}.json")
    return Script(name=name, description=str(description), turns=turns)


def _parse_turn(turn: object, where: str) -> ScriptTurn:
    if not isinstance(turn, dict) or not isinstance(turn.get("chunks", []), list):
        raise ScriptError(f"{where}: a turn is an object with a list 'chunks'")
    items = tuple(
        _parse_item(item, f"{where}.chunks[{index}]") for index, item in enumerate(turn.get("chunks", []))
    )
    has_tools = any(isinstance(item, ToolCallFragment) for item in items)
    reason_text = turn.get("finish_reason", "tool_calls" if has_tools else "stop")
    if reason_text not in _FINISH_REASONS:
        raise ScriptError(f"{where}.finish_reason {reason_text!r} is not one of {sorted(_FINISH_REASONS)}")
    usage = turn.get("usage")
    if usage is not None and not (
        isinstance(usage, dict)
        and all(isinstance(usage.get(key), int | None) for key in ("input_tokens", "output_tokens"))
    ):
        raise ScriptError(f"{where}.usage must be an object with integer input_tokens and output_tokens")
    parsed_usage = Usage(usage.get("input_tokens"), usage.get("output_tokens")) if usage else None
    return ScriptTurn(items=items, stop_reason=_FINISH_REASONS[reason_text], usage=parsed_usage)


def _parse_item(item: object, where: str) -> ScriptItem:
    if not isinstance(item, dict) or len(item) != 1:
        raise ScriptError(f"{where}: a chunk has exactly one of 'text', 'tool_call', 'delay_ms', 'error'")
    ((kind, value),) = item.items()
    if kind == "text" and isinstance(value, str):
        return TextDelta(value)
    if kind == "delay_ms" and isinstance(value, int | float) and value >= 0:
        return Delay(value / 1000)
    if kind == "tool_call" and isinstance(value, dict):
        return _parse_tool_call(value, where)
    if kind == "error" and isinstance(value, dict):
        code = value.get("code", "UNAVAILABLE")
        if code not in SCRIPT_ERROR_CODES:
            raise ScriptError(f"{where}.error.code {code!r} is not a gRPC status code name")
        return Fault(code=code, message=str(value.get("message", "scripted error")))
    raise ScriptError(f"{where}: unknown or mistyped chunk {kind!r}")


def _parse_tool_call(value: Mapping[str, object], where: str) -> ToolCallFragment:
    unknown = set(value) - {"index", "id", "name", "arguments"}
    if unknown:
        raise ScriptError(f"{where}.tool_call: unknown keys {sorted(unknown)}")
    index = value.get("index")
    tool_call_id, name, arguments = (value.get(key) for key in ("id", "name", "arguments"))
    if (
        not isinstance(index, int | str | None)
        or not isinstance(tool_call_id, str | None)
        or not isinstance(name, str | None)
        or not isinstance(arguments, str | None)
    ):
        raise ScriptError(f"{where}.tool_call: index is a number, id, name and arguments are strings")
    return ToolCallFragment(key=index, tool_call_id=tool_call_id, name=name, arguments=arguments)


def load_scripts(directories: Iterable[Path] = ()) -> dict[str, Script]:
    """The built-in scripts, then each directory's `*.json` (a later one wins on a name clash)."""
    scripts: dict[str, Script] = {}
    builtin = resources.files("toolwire.server") / "scripts"
    for entry in sorted(builtin.iterdir(), key=lambda entry: entry.name):
        if entry.name.endswith(".json"):
            name = entry.name.removesuffix(".json")
            scripts[name] = _parse_text(
                name, entry.read_text(encoding="utf-8"), f"built-in script {entry.name}"
            )
    for directory in directories:
        if not directory.is_dir():
            raise ScriptError(f"--scripts {directory}: not a directory")
        for path in sorted(directory.glob("*.json")):
            scripts[path.stem] = _parse_text(path.stem, path.read_text(encoding="utf-8"), str(path))
    return scripts


def _parse_text(name: str, text: str, origin: str) -> Script:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ScriptError(f"{origin}: not valid JSON: {error.msg} at line {error.lineno}") from None
    return parse_script(name, document, origin)


async def play_turn(turn: ScriptTurn, activity: Activity) -> AsyncGenerator[ModelEvent, None]:
    """Yields a turn's events, sleeping at its delays and failing at its fault; counts in `activity`."""
    activity.streams_started += 1
    completed = False
    try:
        for item in turn.items:
            if isinstance(item, Delay):
                await asyncio.sleep(item.seconds)
            elif isinstance(item, Fault):
                raise ModelError(item.message, code=item.code)
            else:
                yield item
        if turn.usage is not None:
            yield turn.usage
        yield TurnEnd(turn.stop_reason, turn.stop_reason.value)
        completed = True
    finally:
        if completed:
            activity.streams_completed += 1
        else:
            activity.streams_closed_early += 1


class ScriptedModel:
    """Plays one script: model call N plays turn N."""

    def __init__(self, script: Script, activity: Activity) -> None:
        self._script = script
        self._activity = activity

    @property
    def model_id(self) -> str:
        return f"{PROVIDER_NAME}/{self._script.name}"

    async def stream(self, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        turns = self._script.turns
        if call.round > len(turns):
            raise FailedPrecondition(
                f"script {self._script.name!r} has {len(turns)} turn(s) but the chat needed model call "
                f"{call.round}: add a turn to {self._script.name}.json"
            )
        turn = turns[call.round - 1]
        self._activity.calls.append(call)
        async with contextlib.aclosing(play_turn(turn, self._activity)) as events:
            async for event in events:
                yield event


class EchoModel:
    """Streams the last user message back, word by word."""

    def __init__(self, activity: Activity) -> None:
        self._activity = activity

    @property
    def model_id(self) -> str:
        return f"{PROVIDER_NAME}/{ECHO_NAME}"

    async def stream(self, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        self._activity.calls.append(call)
        last_user = next((m.content for m in reversed(call.messages) if m.role is Role.USER), "")
        words = _WORD.findall(last_user)
        turn = ScriptTurn(tuple(TextDelta(word) for word in words), StopReason.STOP, None)
        async with contextlib.aclosing(play_turn(turn, self._activity)) as events:
            async for event in events:
                yield event


class ScriptedProvider:
    """The `scripted/` provider."""

    def __init__(self, scripts: Mapping[str, Script]) -> None:
        self._scripts = dict(scripts)
        self.activity = Activity()

    @property
    def name(self) -> str:
        return PROVIDER_NAME

    def resolve(self, model_name: str) -> ScriptedModel | EchoModel:
        if model_name == ECHO_NAME:
            return EchoModel(self.activity)
        script = self._scripts.get(model_name)
        if script is None:
            known = ", ".join(sorted([ECHO_NAME, *self._scripts]))
            raise ModelNotFound(
                f"no script named {model_name!r} (scripted/{model_name}); known: {known}. "
                f"Add {model_name}.json to a --scripts directory."
            )
        return ScriptedModel(script, self.activity)

    def list_models(self) -> list[ModelInfo]:
        echo = ModelInfo(f"{PROVIDER_NAME}/{ECHO_NAME}", PROVIDER_NAME, "streams the last user message back")
        scripted = [
            ModelInfo(f"{PROVIDER_NAME}/{script.name}", PROVIDER_NAME, script.description)
            for script in self._scripts.values()
        ]
        return [echo, *scripted]
