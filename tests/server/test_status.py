"""The error table: every domain error gets a named status, never a crash or UNKNOWN."""

from __future__ import annotations

import grpc
import pytest

from toolwire.server import errors
from toolwire.server.status import ERROR_TABLE, MAX_MESSAGE_BYTES, status_for


@pytest.mark.parametrize(("error_class", "code"), list(ERROR_TABLE.items()))
def test_each_domain_error_has_its_code_and_keeps_its_message(error_class, code):
    assert status_for(error_class("what to fix")) == (code, "what to fix")


def test_a_model_error_carries_its_own_code():
    assert status_for(errors.ModelError("slow down", code="RESOURCE_EXHAUSTED")) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "slow down",
    )


@pytest.mark.parametrize("code_name", ["NOT_A_CODE", "OK"])
def test_a_model_error_with_an_unusable_code_is_unavailable_not_a_crash(code_name):
    assert status_for(errors.ModelError("boom", code=code_name)) == (grpc.StatusCode.UNAVAILABLE, "boom")


def test_timeouts_are_deadline_exceeded():
    assert status_for(TimeoutError())[0] is grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.mark.parametrize("echoed", ["x" * 48_000, "é" * 20_000, "🙂" * 5_000])
def test_a_message_echoing_a_huge_value_is_cut_to_fit_a_trailer(echoed):
    """A client refuses a status trailer over its metadata limit with RESOURCE_EXHAUSTED, hiding the
    real status: a message that echoes what the client sent must stay small, and say it was cut."""
    code, message = status_for(errors.InvalidRequest(f"no tool call {echoed!r} is pending"))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert len(message.encode()) <= MAX_MESSAGE_BYTES
    assert message.startswith("no tool call '")
    assert "[cut: the message had" in message


def test_a_short_message_is_kept_whole():
    text = "a second start on the same stream: a chat has exactly one start"
    assert status_for(errors.InvalidRequest(text)) == (grpc.StatusCode.INVALID_ARGUMENT, text)
