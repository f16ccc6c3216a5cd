"""The JSON log format and the secret mask on the handler."""

from __future__ import annotations

import io
import json
import logging

from toolwire.server.logs import MASK, JsonFormatter, SecretMask


def make_logger(mask: SecretMask) -> tuple[logging.Logger, io.StringIO]:
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(mask)
    logger = logging.getLogger(f"test-logs-{id(mask)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger, output


def test_one_json_object_per_line_with_the_fields():
    logger, output = make_logger(SecretMask())
    logger.info("chat %s finished", "abc", extra={"chat_id": "abc", "rounds": 2})
    entry = json.loads(output.getvalue())
    assert entry["message"] == "chat abc finished" and entry["level"] == "INFO"
    assert (entry["chat_id"], entry["rounds"]) == ("abc", 2) and "time" in entry and "logger" in entry


def test_known_secrets_are_masked_in_the_message_fields_and_traceback():
    mask = SecretMask()
    mask.add(["sk-live-123456", None, ""])
    logger, output = make_logger(mask)
    logger.warning("key %s rejected", "sk-live-123456", extra={"detail": "with sk-live-123456"})
    try:
        raise RuntimeError("boom sk-live-123456")
    except RuntimeError:
        logger.exception("failed")
    text = output.getvalue()
    assert "sk-live-123456" not in text and text.count(MASK) >= 3
