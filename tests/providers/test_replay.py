"""Layer 1: every fixture stream replayed through its adapter over real HTTP, whole and split at
random byte offsets, with the fragments assembled by the one assembler the loop uses."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jiter
import pytest

from tests.fakes.provider import Reply
from tests.providers.conftest import model_call
from toolwire.server.assembler import AssembledCall, ToolCallAssembler
from toolwire.server.errors import ProviderError
from toolwire.server.events import Reasoning, TextDelta, ToolCallEnd, ToolCallFragment, TurnEnd, Usage
from toolwire.server.status import status_for

FIXTURES = Path(__file__).parent / "fixtures"
SPLITS = [None, 7, 1234]  # whole, then two random byte splits


def fixtures(wire_api: str) -> list[Any]:
    """(stream body, expected outcome, split seed) for each fixture of `wire_api` and each split."""
    streams = sorted((FIXTURES / wire_api).glob("*.sse"))
    assert streams, f"no fixtures in {FIXTURES / wire_api}"
    return [
        pytest.param(
            path.read_bytes(),
            json.loads(path.with_suffix(".expected.json").read_text()),
            split,
            id=f"{path.stem}-split{split}",
        )
        for path in streams
        for split in SPLITS
    ]


async def replay(provider, body: bytes, split: int | None, fake_provider) -> dict[str, Any]:
    """Streams a fixture through the adapter; the outcome in the shape of the expected files."""
    fake_provider.enqueue(Reply(body=body, split_seed=split))
    model = provider.resolve("test-model")
    assembler = ToolCallAssembler(set())
    calls: list[AssembledCall] = []
    outcome: dict[str, Any] = {"text": "", "stop_reason": None, "usage": None, "reasoning": [], "error": None}
    try:
        async for event in model.stream(model_call()):
            if isinstance(event, TextDelta):
                outcome["text"] += event.text
            elif isinstance(event, ToolCallFragment):
                calls.extend(assembler.add(event).completed)
            elif isinstance(event, ToolCallEnd):
                ended = assembler.end(event)
                calls.extend([ended] if ended else [])
            elif isinstance(event, Reasoning):
                outcome["reasoning"].append(
                    {"text": event.text, "signature": event.signature, "redacted_data": event.redacted_data}
                )
            elif isinstance(event, Usage):
                outcome["usage"] = {"input_tokens": event.input_tokens, "output_tokens": event.output_tokens}
            elif isinstance(event, TurnEnd):
                outcome["stop_reason"] = event.reason.value
                calls.extend(assembler.flush())
    except ProviderError as error:
        code, message = status_for(error)
        outcome["error"] = {"code": code.name, "message": message}
    calls.extend(assembler.flush())
    complete, incomplete = [], []
    for call in calls:
        try:  # as the client gets them: a call with no arguments must arrive as "{}", not ""
            arguments = json.loads(call.arguments_json)
            complete.append({"id": call.tool_call_id, "name": call.name, "arguments": arguments})
        except ValueError:
            incomplete.append({"name": call.name, "arguments_text": call.arguments_json})
    outcome["tool_calls"] = complete
    outcome["tool_calls_incomplete"] = incomplete
    return outcome


def check(outcome: dict[str, Any], expected: dict[str, Any]) -> None:
    assert outcome["text"] == expected["text"]
    assert outcome["tool_calls"] == expected["tool_calls"]
    assert outcome["tool_calls_incomplete"] == expected.get("tool_calls_incomplete", [])
    assert outcome["reasoning"] == expected["reasoning"]
    if expected["error"] is None:
        assert outcome["error"] is None
        assert outcome["stop_reason"] == expected["stop_reason"]
        assert outcome["usage"] == expected["usage"]
    else:  # the usage of a stream cut by an error is never reported
        assert outcome["error"] is not None, "expected an error"
        assert outcome["error"]["code"] == expected["error"]["code"]
        assert expected["error"]["message_contains"] in outcome["error"]["message"]
        assert outcome["stop_reason"] is None


@pytest.mark.parametrize(("body", "expected", "split"), fixtures("openai"))
async def test_openai_chat_completions_fixture(body, expected, split, fake_provider, openai_provider):
    check(await replay(openai_provider, body, split, fake_provider), expected)


@pytest.mark.parametrize(("body", "expected", "split"), fixtures("anthropic"))
async def test_anthropic_messages_fixture(body, expected, split, fake_provider, anthropic_provider):
    check(await replay(anthropic_provider, body, split, fake_provider), expected)


TEXT_EVENTS = {  # a fixture whose stream is text only, and the start of its first text
    "openai": ("openai/text-only-usage.sse", b"The tallest"),
    "anthropic": ("anthropic/text-only.sse", b"Photosynthesis"),
}


def with_unique_texts(body: bytes, first_text: bytes, count: int) -> tuple[bytes, list[str]]:
    """`body` with `count` copies of its first text event, each carrying a text never seen before."""
    events = body.split(b"\n\n")
    [index] = [position for position, event in enumerate(events) if first_text in event]
    texts = [f"unique-{number}-{uuid.uuid4().hex}" for number in range(count)]
    copies = [events[index].replace(first_text, text.encode()) for text in texts]
    return b"\n\n".join([*events[:index], *copies, *events[index:]]), texts


@pytest.fixture(params=["openai", "anthropic"])
def wire_and_provider(request):
    """Each wire API with the conftest's provider for it."""
    return request.param, request.getfixturevalue(f"{request.param}_provider")


async def test_model_text_does_not_stay_in_the_json_parsers_cache(wire_and_provider, fake_provider):
    """jiter caches the strings it makes, process-wide; the model's text must not stay there after
    its chat (and fill the cache as chats go by): only object keys are cached."""
    wire_api, provider = wire_and_provider
    name, first_text = TEXT_EVENTS[wire_api]
    body, texts = with_unique_texts((FIXTURES / name).read_bytes(), first_text, count=300)
    jiter.cache_clear()

    outcome = await replay(provider, body, None, fake_provider)

    assert outcome["error"] is None
    assert all(text in outcome["text"] for text in texts)
    assert jiter.cache_usage() < 100, f"{jiter.cache_usage()} strings cached after 300 unique texts"
