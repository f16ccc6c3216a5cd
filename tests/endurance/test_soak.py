"""The short soak: `make soak` in miniature (tests/endurance/soak.py), bounded to about six seconds of
load, in the normal test suite."""

from __future__ import annotations

import pytest

from tests.endurance.soak import SoakConfig, run

pytestmark = pytest.mark.timeout(120)


async def test_a_short_soak_ends_every_chat_clearly_and_leaves_the_server_as_it_found_it():
    report = await run(SoakConfig(seconds=6, concurrency=60, warmup_seconds=2, seed=7))
    print(report.summary())
    assert not report.failures, report.summary()
    assert report.chats > 60 and report.tool_runs > 0
    assert {"OK", "CANCELLED_BY_CLIENT", "UNAVAILABLE", "RESOURCE_EXHAUSTED"} <= set(report.outcomes)
