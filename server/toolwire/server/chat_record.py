"""The one log line per chat: its id, model and outcome, never its content.

`ChatSessions.run` fills a `ChatRecord` as the chat goes; the gRPC layer (`chat_gate.py`), which is
the only place that knows the final status of every chat (refused, finished, failed, cancelled, past
its deadline, ended by a shutdown), writes the line. With `--log-format json` the fields are
separate keys: chat_id, model, outcome, status, reason, rounds, tools_called, duration_ms.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from toolwire.server.chat_events import ChatFinished

log = logging.getLogger("toolwire.server.chat")


def new_chat_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(slots=True)
class ChatRecord:
    """What is known about one chat so far."""

    chat_id: str = field(default_factory=new_chat_id)
    started: float = field(default_factory=time.monotonic)
    model: str = ""
    """The resolved model id, once the start message has been read."""
    finished: ChatFinished | None = None

    def log_outcome(self, outcome: str, status: str, detail: str = "") -> None:
        """Writes the chat's line. `outcome`: finished, failed, cancelled or refused; `status`: the gRPC
        code name the client got; `detail`: the status message (written for clients: no secrets)."""
        duration_ms = round((time.monotonic() - self.started) * 1000)
        fields: dict[str, object] = {
            "chat_id": self.chat_id,
            "model": self.model,
            "outcome": outcome,
            "status": status,
            "duration_ms": duration_ms,
        }
        if self.finished is not None:
            fields.update(
                reason=self.finished.reason.value,
                rounds=self.finished.rounds,
                tools_called=len(self.finished.tools_called),
                chunks=self.finished.chunks_received,
            )
        text = " ".join(f"{key}={value}" for key, value in fields.items() if key != "chat_id")
        suffix = f": {detail}" if detail else ""
        log.info("chat %s %s: %s%s", self.chat_id, outcome, text, suffix, extra=fields)
