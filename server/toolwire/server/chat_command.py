"""`toolwire chat MODEL PROMPT`: try a model in the terminal, with three demo tools.

The answer streams to stdout; tool calls, their results and a closing summary go to stderr, so
`toolwire chat … > answer.txt` keeps just the answer. Without `--target` a private server runs in
this process on a free loopback port, with the same configuration `serve` would use (the config
file, OPENAI_API_KEY, ANTHROPIC_API_KEY, …); with `--target` the chat goes to a running server.
Either way the chat takes the real path: gRPC, the Python client, tools run here.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import operator
import os
import sys
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from toolwire.client import (
    Client,
    Finish,
    Message,
    TextDelta,
    ToolCallRejected,
    ToolRequest,
    ToolResultSent,
    ToolwireError,
    tool,
)


@tool
def get_weather(location: str) -> dict[str, object]:
    """Current weather for a place (a demo tool: it always answers mild and sunny).

    Args:
        location: A city name, e.g. "Paris".
    """
    return {"location": location, "sky": "sunny", "celsius": 21, "note": "demo data from toolwire chat"}


@tool
def get_time(timezone: str) -> str:
    """The current local date and time in an IANA time zone.

    Args:
        timezone: An IANA time zone name, e.g. "Europe/Paris" or "America/New_York".
    """
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}: use an IANA name such as Europe/Paris") from None
    return datetime.datetime.now(zone).isoformat(timespec="seconds")


_OPERATORS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}  # fmt: skip


@tool
def calculate(expression: str) -> float:
    """Evaluates an arithmetic expression: numbers, + - * / // % ** and parentheses.

    Args:
        expression: The expression, e.g. "(17.5 * 3) / 2".
    """
    return _evaluate(ast.parse(expression, mode="eval").body)


def _evaluate(node: ast.AST) -> float:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError("exponents above 100 are refused")
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError(f"only numbers and + - * / // % ** are allowed, not {ast.unparse(node)!r}")


DEMO_TOOLS = [get_weather, get_time, calculate]


@dataclasses.dataclass(slots=True)
class ChatCommand:
    """What `toolwire chat` was asked to do."""

    model: str
    prompt: str
    system: str | None = None
    target: str | None = None
    token: str | None = None
    use_tools: bool = True
    max_tool_rounds: int = 0
    config_path: Path | None = None


async def run_chat(command: ChatCommand, out: IO[str], err: IO[str]) -> int:
    """Runs one chat and prints it; returns the exit code (0 done, 1 the chat failed)."""
    if command.target is not None:
        return await _chat(command, command.target, out, err)
    from toolwire.server.app import Server
    from toolwire.server.setup import settings_from

    settings = settings_from(command.config_path, os.environ, {})
    private = dataclasses.replace(settings, listen=("127.0.0.1:0",), auth_token=None, tls=None)
    server = Server(private)
    await server.start()
    try:
        return await _chat(command, server.addresses[0], out, err)
    finally:
        await server.stop(0)


async def _chat(command: ChatCommand, target: str, out: IO[str], err: IO[str]) -> int:
    messages = [Message.user(command.prompt)]
    if command.system:
        messages.insert(0, Message.system(command.system))
    options: dict[str, Any] = {"tools": DEMO_TOOLS if command.use_tools else []}
    if command.max_tool_rounds:
        options["max_tool_rounds"] = command.max_tool_rounds
    try:
        printer = _Printer(out, err)
        async with Client(target, token=command.token) as client:
            async for event in client.chat(command.model, messages, **options):
                printer.show(event)
    except ToolwireError as error:
        print(f"\ntoolwire chat: {error.code.name}: {error.details}", file=err)
        return 1
    return 0


class _Printer:
    """Prints a chat: the text to `out`, one paragraph per model call; the rest to `err`."""

    def __init__(self, out: IO[str], err: IO[str]) -> None:
        self._out = out
        self._err = err
        self._text_round = 0  # the model call whose text is being printed; 0: none yet
        self._mid_line = False  # text was printed and its line is not ended

    def show(self, event: object) -> None:
        if isinstance(event, TextDelta):
            if self._text_round and event.round != self._text_round:
                self._end_line()
                self._out.write("\n")
            self._text_round = event.round
            self._out.write(event.text)
            self._out.flush()
            self._mid_line = True
        elif isinstance(event, ToolRequest):
            self._note(f"[tool] {event.name}({event.arguments_json})")
        elif isinstance(event, ToolResultSent):
            self._note(f"[tool] {'error' if event.is_error else '->'} {event.content}")
        elif isinstance(event, ToolCallRejected):
            self._note(f"[tool] {event.name} refused by the server: {event.reason}")
        elif isinstance(event, Finish):
            self._end_line()
            tools = ", ".join(event.tools_called) or "none"
            tokens = f"{_count(event.input_tokens)} in / {_count(event.output_tokens)} out"
            self._note(
                f"[{event.reason}] {event.model}: {event.rounds} model calls, tools: {tools}, "
                f"tokens {tokens}, {event.duration_seconds:.1f} s"
            )

    def _note(self, line: str) -> None:
        self._end_line()
        print(line, file=self._err, flush=True)

    def _end_line(self) -> None:
        if self._mid_line:
            self._out.write("\n")
            self._mid_line = False
        self._out.flush()


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def prompt_text(prompt: str) -> str:
    """The prompt, read from standard input when it is `-`."""
    return sys.stdin.read().rstrip("\n") if prompt == "-" else prompt
