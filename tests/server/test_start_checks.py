"""The start's number checks at their edges: Durations of any size the type holds, to the nanosecond,
and temperature and top_p that JSON cannot carry. Each is refused with the field and what to send,
never an INTERNAL error."""

from __future__ import annotations

import math

import pytest
from google.protobuf import duration_pb2

from tests.conftest import start_request
from toolwire.server import convert
from toolwire.server.errors import InvalidRequest
from toolwire.server.settings import ServerSettings


def converted(**fields):
    start = start_request("scripted/echo", tools=(), **fields).start
    return convert.chat_request_from_proto(start, ServerSettings())


@pytest.mark.parametrize("field", ["tool_timeout", "text_coalesce_window"])
@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(10**14, 0), (-(10**14), 0), (315_576_000_000, 0), (0, -5)],  # past timedelta's range; below 0
)
def test_a_duration_out_of_range_is_refused_with_the_field(field, seconds, nanos):
    with pytest.raises(InvalidRequest, match=rf"^start\.{field} is .* s; use "):
        converted(**{field: duration_pb2.Duration(seconds=seconds, nanos=nanos)})


def test_a_duration_is_read_to_the_nanosecond():
    request = converted(tool_timeout=duration_pb2.Duration(nanos=1))  # more than 0: accepted
    assert request.tool_timeout_seconds == 1e-9
    window = converted(text_coalesce_window=duration_pb2.Duration(seconds=0, nanos=250_000_001))
    assert window.text_coalesce_window_seconds == 0.250000001


@pytest.mark.parametrize("field", ["temperature", "top_p"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_number_json_cannot_carry_is_refused(field, value):
    with pytest.raises(InvalidRequest, match=rf"^start\.{field} is -?(nan|inf): use a finite number"):
        converted(**{field: value})


def test_finite_numbers_and_unset_ones_pass():
    options = converted(temperature=0.0, top_p=0.5).options
    assert (options.temperature, options.top_p) == (0.0, 0.5)
    assert converted().options.temperature is None
