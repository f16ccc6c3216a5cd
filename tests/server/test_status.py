"""The error table: every domain error gets a named status, never a crash or UNKNOWN."""

from __future__ import annotations

import grpc
import pytest

from toolwire.server import errors
from toolwire.server.status import ERROR_TABLE, status_for


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
