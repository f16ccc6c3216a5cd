"""Assembles streamed tool-call fragments into complete calls: the one place this happens.

Fragments are keyed by the provider's index (or content-block index). The rules, each one a bug
seen in another project:

- The id and name usually come only on a call's first fragment; later ones are matched by key.
- A fragment without a key continues the latest call (providers that send no index).
- An id or name repeated on every fragment is not appended twice; an empty-string id is no id.
- A new, different id at a key already in use starts a new call (providers that reuse index 0).
- A call is complete when the provider says so (`ToolCallEnd`), when another call begins, or when
  the turn ends (`flush`). Never when its buffer first parses as JSON: `{"a": 1}` can still be the
  prefix of `{"a": 1}` + more of a longer string.
- Arguments that are empty or only whitespace mean `{}` (a tool without parameters).
- Arguments reported whole at the end replace what the fragments built.

Calls complete in the order they began. Ids are made unique within a chat; a call without an id
gets one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from toolwire.server.errors import ModelProtocolError
from toolwire.server.events import ToolCallEnd, ToolCallFragment


@dataclass(slots=True, frozen=True)
class AssembledCall:
    """A complete tool call, ready for validation."""

    tool_call_id: str
    name: str
    arguments_json: str


@dataclass(slots=True, frozen=True)
class ArgumentsDelta:
    """A piece of arguments added to an open call (for clients that opted in to see them)."""

    tool_call_id: str
    name: str
    arguments_delta: str


@dataclass(slots=True, frozen=True)
class Progress:
    """What one fragment changed: calls it completed, and the arguments it added."""

    completed: tuple[AssembledCall, ...] = ()
    delta: ArgumentsDelta | None = None


@dataclass(slots=True)
class _OpenCall:
    key: str | None
    provider_id: str | None
    tool_call_id: str
    name: str = ""
    pieces: list[str] = field(default_factory=list)

    def complete(self) -> AssembledCall:
        arguments = "".join(self.pieces)
        if not arguments.strip():
            arguments = "{}"
        return AssembledCall(self.tool_call_id, self.name, arguments)


_NO_PROGRESS = Progress()


def _normalize_key(key: int | str | None) -> str | None:
    return None if key is None else str(key)


class ToolCallAssembler:
    """Turns the fragments of one model turn into complete calls.

    `taken_ids` is shared across the turns of a chat so that every call id is unique within it.
    """

    def __init__(self, taken_ids: set[str], id_prefix: str = "toolwire_call_") -> None:
        self._taken_ids = taken_ids
        self._id_prefix = id_prefix
        self._counter = itertools.count(1)
        self._open: dict[str | None, _OpenCall] = {}
        self._latest: _OpenCall | None = None
        self._finished: dict[str | None, str | None] = {}

    def add(self, fragment: ToolCallFragment) -> Progress:
        """Adds one fragment; returns the calls it completed and the arguments it added."""
        key = _normalize_key(fragment.key)
        provider_id = fragment.tool_call_id or None
        target = self._open.get(key) if key is not None else self._latest
        completed: tuple[AssembledCall, ...] = ()
        if target is not None and provider_id and target.provider_id and provider_id != target.provider_id:
            target = None  # a new id where a call is open: a new call, even at the same index
        if target is None:
            if self._is_leftover(key, provider_id, fragment):
                return _NO_PROGRESS
            completed = self._complete_all()
            target = self._begin(key, provider_id)
        elif provider_id and target.provider_id is None:
            target.provider_id = provider_id
        if fragment.name and not target.name:
            target.name = fragment.name
        if not fragment.arguments:
            return Progress(completed) if completed else _NO_PROGRESS
        target.pieces.append(fragment.arguments)
        return Progress(completed, ArgumentsDelta(target.tool_call_id, target.name, fragment.arguments))

    def end(self, event: ToolCallEnd) -> AssembledCall | None:
        """Completes the call the provider says is done; None if it was already complete."""
        key = _normalize_key(event.key)
        target = self._open.get(key) if key is not None else self._latest
        if target is None:
            if key in self._finished:
                return None
            raise ModelProtocolError(f"the model ended tool call {event.key!r}, which it never started")
        if event.arguments is not None:
            target.pieces = [event.arguments]
        return self._complete(target)

    def flush(self) -> tuple[AssembledCall, ...]:
        """Completes every call still open: the turn is over."""
        return self._complete_all()

    def _begin(self, key: str | None, provider_id: str | None) -> _OpenCall:
        call = _OpenCall(key=key, provider_id=provider_id, tool_call_id=self._unique_id(provider_id))
        self._open[key] = call
        self._latest = call
        return call

    def _unique_id(self, provider_id: str | None) -> str:
        candidate = provider_id or f"{self._id_prefix}{next(self._counter)}"
        base = candidate
        suffix = 2
        while candidate in self._taken_ids:
            candidate = f"{base}_{suffix}"
            suffix += 1
        self._taken_ids.add(candidate)
        return candidate

    def _is_leftover(self, key: str | None, provider_id: str | None, fragment: ToolCallFragment) -> bool:
        """A fragment for a call that is already complete: harmless if empty, an error if not."""
        if key is None or key not in self._finished:
            return False
        if provider_id and provider_id != self._finished[key]:
            return False  # a new call reusing the index
        if fragment.arguments:
            raise ModelProtocolError(
                f"the model sent more of tool call {fragment.key!r} after it was complete "
                "and sent to the client"
            )
        return True

    def _complete(self, call: _OpenCall) -> AssembledCall:
        del self._open[call.key]
        if self._latest is call:
            self._latest = None
        self._finished[call.key] = call.provider_id
        return call.complete()

    def _complete_all(self) -> tuple[AssembledCall, ...]:
        if not self._open:
            return ()
        return tuple(self._complete(call) for call in list(self._open.values()))
