"""bench/instructions.py: reading callgrind's dumps, and the per-chunk figure with the chats taken out."""

from __future__ import annotations

import pytest

from bench.instructions import Count, counted_instructions, per_chunk

# The head of a dump after instrumentation was turned off and on again: valgrind 3.19's summary line
# has wrapped around; the totals line is the sum of the costs below it.
DUMP = """version: 1
creator: callgrind-3.19.0
cmd:  python bench/floor_server.py 45707
part: 2
desc: Trigger: dump
events: Ir
summary: 18446744073683368752
totals: 18829823
"""


def test_a_dump_is_read_from_its_totals_not_its_summary():
    assert counted_instructions(DUMP) == 18_829_823


def test_a_file_that_is_no_dump_is_refused():
    with pytest.raises(ValueError, match="no totals line"):
        counted_instructions("events: Ir\nsummary: 12\n")


def test_the_paced_loads_chats_are_taken_out_of_its_chunks():
    paced = Count(instructions=2 * 1_000_000 + 400 * 150_000, items=400)  # 2 chats of 200 chunks
    chats = Count(instructions=20 * 1_000_000, items=20)
    assert chats.per_item == 1_000_000
    assert per_chunk(paced, chats, chats_in_paced=2) == 150_000
