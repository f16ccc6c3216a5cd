"""The internal vocabulary of model output: what every model adapter yields, and nothing else.

A model call is an async stream of these events. Adapters translate a provider's wire format into
them and keep every provider quirk to themselves; the chat loop consumes them without knowing which
provider spoke. Tool-call fragments stay raw here: they are assembled in one place
(`assembler.ToolCallAssembler`), never in an adapter.

This module imports nothing from providers, gRPC or the rest of the server.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StopReason(enum.Enum):
    """Why the model ended its turn, in the provider-neutral terms the loop acts on."""

    STOP = "stop"
    """The model finished its answer."""
    TOOL_CALLS = "tool_calls"
    """The model ended its turn to have its tool calls run."""
    LENGTH = "length"
    """The output token limit cut the turn short."""
    CONTENT_FILTER = "content_filter"
    """The provider withheld the rest of the turn."""
    OTHER = "other"
    """Any other reason the provider gave."""


@dataclass(slots=True, frozen=True)
class TextDelta:
    """A piece of the model's visible text."""

    text: str
    """The text to append; never empty."""


@dataclass(slots=True, frozen=True)
class ToolCallFragment:
    """A piece of a streamed tool call, exactly as the provider sent it (after decoding).

    Any field may be missing on any fragment: providers differ in which fragment carries what.
    """

    key: int | str | None
    """Which call this fragment belongs to: the provider's tool-call index or content-block index;
    None when the provider sends none (the fragment then continues the latest call)."""
    tool_call_id: str | None = None
    """The call's id; usually only on the first fragment. An empty string counts as missing."""
    name: str | None = None
    """The tool's name; usually only on the first fragment, repeated by some providers."""
    arguments: str | None = None
    """The next piece of the arguments' JSON text."""


@dataclass(slots=True, frozen=True)
class ToolCallEnd:
    """The provider says a tool call is complete (e.g. Anthropic's content_block_stop)."""

    key: int | str | None
    """The same key as the call's fragments."""
    arguments: str | None = None
    """The complete arguments, when the provider reports them at the end; they replace whatever
    the fragments built (some providers only send them here)."""


@dataclass(slots=True, frozen=True)
class Reasoning:
    """A complete block of the model's reasoning ("thinking"). Not shown to clients; kept in the
    transcript because some providers require it back in the next round of a tool loop."""

    provider: str
    """The wire API that produced it (e.g. `anthropic`); only that API is sent it back."""
    text: str = ""
    """The readable reasoning text, possibly empty."""
    signature: str | None = None
    """The provider's signature over the text (Anthropic), needed to send the block back."""
    redacted_data: str | None = None
    """An opaque, encrypted block the provider withheld (Anthropic `redacted_thinking`)."""


@dataclass(slots=True, frozen=True)
class Usage:
    """Token counts reported by the provider; None means not reported (unknown, not zero)."""

    input_tokens: int | None = None
    """Tokens the model read."""
    output_tokens: int | None = None
    """Tokens the model wrote."""


@dataclass(slots=True, frozen=True)
class TurnEnd:
    """The model ended its turn. Only a late `Usage` may follow it (OpenAI reports usage after the
    finish reason); tool calls still open are complete now and may be dispatched."""

    reason: StopReason
    """Why, in neutral terms."""
    provider_reason: str = ""
    """The provider's own word for it, for logs."""


ModelEvent = TextDelta | ToolCallFragment | ToolCallEnd | Reasoning | Usage | TurnEnd
"""Everything a model call may yield."""
