"""Logging: text or JSON lines on stderr, library chatter held back, and secrets masked.

`--log-format json` writes one JSON object per line: `time`, `level`, `logger`, `message`, then the
record's structured fields (the per-chat line carries `chat_id`, `model`, `outcome`, `status`,
`rounds`, `tools_called`, `duration_ms`); a worker process (`workers` > 1) adds `worker`, its number,
to every line (`worker N` in the text format). A `SecretMask` filter on the handler replaces any known
secret (the bearer token, provider API keys) in a message or field, as a last line of defence: no
line is meant to contain one in the first place.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Iterable
from typing import Any

from toolwire.server.settings import ServerSettings

QUIET_LIBRARIES = ("openai", "anthropic", "httpx2", "httpcore2")
"""Libraries whose INFO/DEBUG logs are held back even at DEBUG: they log every request, and the
SDKs' debug logs include request bodies (prompts). Our own log lines say what happened."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
WORKER_TEXT_FORMAT = "%(asctime)s %(levelname)s worker %(worker)s %(name)s: %(message)s"
MASK = "[redacted]"
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(structured_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already formatted (and masked) by SecretMask
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def structured_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES}


class SecretMask(logging.Filter):
    """Replaces every registered secret in the formatted message and the structured fields."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, secrets: Iterable[str | None]) -> None:
        self._secrets.update(secret for secret in secrets if secret and len(secret) >= 4)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = self._mask(record.getMessage())
        record.msg, record.args = message, None
        for key, value in structured_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, self._mask(value))
        if record.exc_info:
            record.exc_text = self._mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


class WorkerField(logging.Filter):
    """Adds `worker` (the process's number, from 1) to every record: which worker logged it."""

    def __init__(self, worker: int) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        return True


SECRETS = SecretMask()
"""The process's mask; `configure_logging` installs it and the server adds provider keys to it."""


def configure_logging(settings: ServerSettings, worker: int | None = None) -> None:
    """Root logging to stderr in the chosen format and level, with the secret mask on the handler;
    in worker process `worker`, every line says so."""
    handler = logging.StreamHandler(sys.stderr)
    text_format = TEXT_FORMAT if worker is None else WORKER_TEXT_FORMAT
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(text_format))
    if worker is not None:
        handler.addFilter(WorkerField(worker))
    handler.addFilter(SECRETS)
    SECRETS.add([settings.auth_token])
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for library in QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(logging.WARNING)
