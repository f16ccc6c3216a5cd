"""Running one tool: argument conversion, sync and async functions, results and errors."""

import dataclasses
import enum
import threading
from typing import Any

from toolwire.client._tool_runner import convert_arguments, result_content, run_tool


class Unit(enum.Enum):
    CELSIUS = "celsius"


@dataclasses.dataclass
class Point:
    x: float
    y: float


@dataclasses.dataclass
class Shape:
    corners: list[Point]
    unit: Unit | None = None


def test_arguments_are_converted_to_annotated_types() -> None:
    def draw(shape: Shape, origin: tuple[int, int], units: dict[str, Unit], label, count: int = 1) -> None:  # type: ignore[no-untyped-def]
        pass

    converted = convert_arguments(
        draw,
        {
            "shape": {"corners": [{"x": 1, "y": 2}], "unit": "celsius"},
            "origin": [0, 1],
            "units": {"a": "celsius"},
            "label": [1],
            "count": 3,
        },
    )
    assert converted == {
        "shape": Shape([Point(1, 2)], Unit.CELSIUS),
        "origin": (0, 1),
        "units": {"a": Unit.CELSIUS},
        "label": [1],
        "count": 3,
    }


def test_optional_none_stays_none() -> None:
    def maybe(unit: Unit | None = None) -> None:
        pass

    assert convert_arguments(maybe, {"unit": None}) == {"unit": None}
    assert convert_arguments(maybe, {"unit": "celsius"}) == {"unit": Unit.CELSIUS}


def test_result_content() -> None:
    assert result_content("plain text") == "plain text"
    assert result_content({"a": [1, None]}) == '{"a": [1, null]}'
    assert result_content(None) == "null"
    assert result_content(Point(1, 2)) == '{"x": 1, "y": 2}'
    assert result_content([Unit.CELSIUS]) == '["celsius"]'


async def test_sync_function_runs_in_a_worker_thread() -> None:
    threads: list[int] = []

    def record(value: int) -> dict[str, int]:
        threads.append(threading.get_ident())
        return {"double": value * 2}

    assert await run_tool(record, "record", {"value": 2}) == ('{"double": 4}', False)
    assert threads
    assert threads[0] != threading.get_ident()


async def test_async_function_is_awaited() -> None:
    async def shout(text: str) -> str:
        return text.upper()

    assert await run_tool(shout, "shout", {"text": "hi"}) == ("HI", False)


async def test_exception_becomes_error_result() -> None:
    def fail(city: str) -> None:
        raise LookupError(f"no weather for {city}")

    assert await run_tool(fail, "fail", {"city": "Atlantis"}) == (
        "LookupError: no weather for Atlantis",
        True,
    )


async def test_bad_arguments_and_unserialisable_results_are_error_results() -> None:
    def needs(value: int) -> object:
        return object()

    content, is_error = await run_tool(needs, "needs", {"other": 1})
    assert is_error
    assert content.startswith("TypeError: ")
    content, is_error = await run_tool(needs, "needs", {"value": 1})
    assert (content, is_error) == (
        "TypeError: the tool's result holds a 'object' value, which is not JSON-serialisable",
        True,
    )


async def test_invalid_enum_value_is_an_error_result() -> None:
    def pick(unit: Unit) -> Any:
        return unit

    assert await run_tool(pick, "pick", {"unit": "kelvin"}) == (
        "ValueError: 'kelvin' is not a valid Unit",
        True,
    )
