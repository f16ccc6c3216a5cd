"""The tool-call assembler: every provider quirk it must absorb, and arbitrary splits (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolwire.server.assembler import AssembledCall, ToolCallAssembler
from toolwire.server.errors import ModelProtocolError
from toolwire.server.events import ToolCallEnd, ToolCallFragment


def assemble(fragments: list[ToolCallFragment | ToolCallEnd]) -> list[AssembledCall]:
    assembler = ToolCallAssembler(set())
    calls: list[AssembledCall] = []
    for fragment in fragments:
        if isinstance(fragment, ToolCallEnd):
            ended = assembler.end(fragment)
            calls.extend([ended] if ended else [])
        else:
            calls.extend(assembler.add(fragment).completed)
    calls.extend(assembler.flush())
    return calls


def test_id_and_name_only_on_first_fragment():
    calls = assemble(
        [
            ToolCallFragment(0, "call_1", "get_weather", '{"loc'),
            ToolCallFragment(0, None, None, 'ation": "Par'),
            ToolCallFragment(0, None, None, 'is"}'),
        ]
    )
    assert calls == [AssembledCall("call_1", "get_weather", '{"location": "Paris"}')]


def test_arguments_in_one_piece():
    assert assemble([ToolCallFragment(0, "c", "f", '{"a": 1}')]) == [AssembledCall("c", "f", '{"a": 1}')]


@pytest.mark.parametrize("arguments", ["", "  ", None])
def test_empty_arguments_mean_empty_object(arguments):
    calls = assemble([ToolCallFragment(0, "c", "no_params", arguments)])
    assert calls == [AssembledCall("c", "no_params", "{}")]


def test_new_id_on_reused_index_starts_a_new_call():
    # Ollama reuses index 0 for different calls: names and arguments must not be concatenated.
    calls = assemble(
        [
            ToolCallFragment(0, "a", "add_new_task", '{"t": 1}'),
            ToolCallFragment(0, "b", "add_ideas", '{"i": 2}'),
        ]
    )
    assert calls == [
        AssembledCall("a", "add_new_task", '{"t": 1}'),
        AssembledCall("b", "add_ideas", '{"i": 2}'),
    ]


def test_id_and_name_repeated_on_every_fragment_are_not_doubled():
    calls = assemble(
        [
            ToolCallFragment(0, "0", "my_tool", ""),
            ToolCallFragment(0, "0", "my_tool", '{"q": '),
            ToolCallFragment(0, "0", "my_tool", '"x"}'),
        ]
    )
    assert calls == [AssembledCall("0", "my_tool", '{"q": "x"}')]


def test_empty_string_id_on_continuations_is_no_id():
    calls = assemble(
        [
            ToolCallFragment(0, "call_q", "search", '{"q"'),
            ToolCallFragment(0, "", None, ': "a"}'),
            ToolCallFragment(0, "", None, ""),  # DashScope's trailing empty delta
        ]
    )
    assert calls == [AssembledCall("call_q", "search", '{"q": "a"}')]


def test_fragments_without_index_continue_the_latest_call():
    calls = assemble(
        [
            ToolCallFragment(None, "x1", "a", '{"n"'),
            ToolCallFragment(None, None, None, ": 1}"),
            ToolCallFragment(None, "x2", "b", "{}"),
        ]
    )
    assert calls == [AssembledCall("x1", "a", '{"n": 1}'), AssembledCall("x2", "b", "{}")]


def test_string_and_int_index_are_the_same_key():
    calls = assemble([ToolCallFragment(0, "c", "f", '{"a"'), ToolCallFragment("0", None, None, ": 1}")])
    assert calls == [AssembledCall("c", "f", '{"a": 1}')]


def test_a_call_completes_when_the_next_begins_not_when_it_parses():
    assembler = ToolCallAssembler(set())
    first = assembler.add(ToolCallFragment(0, "a", "f", '{"x": 1}'))
    assert first.completed == ()  # parses as JSON, but more may follow
    more = assembler.add(ToolCallFragment(0, None, None, ""))
    assert more.completed == ()
    second = assembler.add(ToolCallFragment(1, "b", "g", "{"))
    assert second.completed == (AssembledCall("a", "f", '{"x": 1}'),)
    assert assembler.flush() == (AssembledCall("b", "g", "{"),)


def test_end_completes_a_call_and_final_arguments_replace_the_fragments():
    assembler = ToolCallAssembler(set())
    assembler.add(ToolCallFragment("item_1", "fc_1", "lookup", '{"par'))
    ended = assembler.end(ToolCallEnd("item_1", arguments='{"city": "Oslo"}'))
    assert ended == AssembledCall("fc_1", "lookup", '{"city": "Oslo"}')
    assert assembler.end(ToolCallEnd("item_1")) is None  # ending it twice is harmless
    assert assembler.flush() == ()


def test_end_of_a_call_never_started_is_a_protocol_error():
    with pytest.raises(ModelProtocolError, match="never started"):
        ToolCallAssembler(set()).end(ToolCallEnd(3))


def test_arguments_after_a_call_was_completed_are_a_protocol_error():
    assembler = ToolCallAssembler(set())
    assembler.add(ToolCallFragment(0, "a", "f", "{}"))
    assembler.end(ToolCallEnd(0))
    assert assembler.add(ToolCallFragment(0, None, "f", "")).completed == ()  # a harmless repeat
    with pytest.raises(ModelProtocolError, match="after it was complete"):
        assembler.add(ToolCallFragment(0, None, None, '{"late": true}'))


def test_missing_and_duplicate_ids_are_made_unique_within_a_chat():
    taken = {"call_1"}  # already used earlier in the chat
    assembler = ToolCallAssembler(taken)
    calls = [
        *assembler.add(ToolCallFragment(0, None, "f", "{}")).completed,
        *assembler.add(ToolCallFragment(1, "call_1", "g", "{}")).completed,
        *assembler.add(ToolCallFragment(2, "call_1", "h", "{}")).completed,
        *assembler.flush(),
    ]
    assert [call.tool_call_id for call in calls] == ["toolwire_call_1", "call_1_2", "call_1_3"]
    assert taken == {"call_1", "toolwire_call_1", "call_1_2", "call_1_3"}


def test_an_id_arriving_after_the_first_fragment_is_kept_for_matching():
    calls = assemble(
        [
            ToolCallFragment(0, None, "f", '{"a"'),
            ToolCallFragment(0, "late_id", None, ": 1"),
            ToolCallFragment(0, "late_id", None, "}"),
        ]
    )
    assert [(call.name, call.arguments_json) for call in calls] == [("f", '{"a": 1}')]


def test_deltas_report_the_pieces_added_to_the_open_call():
    assembler = ToolCallAssembler(set())
    deltas = [
        assembler.add(fragment).delta
        for fragment in (
            ToolCallFragment(0, "a", "f", ""),
            ToolCallFragment(0, None, None, '{"x"'),
            ToolCallFragment(0, None, None, ": 2}"),
        )
    ]
    assert deltas[0] is None
    assert [(d.tool_call_id, d.name, d.arguments_delta) for d in deltas[1:] if d] == [
        ("a", "f", '{"x"'),
        ("a", "f", ": 2}"),
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
calls_strategy = st.lists(
    st.tuples(
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    ),
    min_size=1,
    max_size=4,
)


@st.composite
def fragmented(draw, style: str):
    """Calls, and the fragments a provider of the given style would stream for them."""
    calls = draw(calls_strategy)
    fragments: list[ToolCallFragment | ToolCallEnd] = []
    for position, (name, arguments) in enumerate(calls):
        text = json.dumps(arguments)
        cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
        pieces = [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        tool_call_id = f"id{position}"
        for number, piece in enumerate(pieces):
            first = number == 0
            if style == "openai":
                fragments.append(
                    ToolCallFragment(
                        position, tool_call_id if first else None, name if first else None, piece
                    )
                )
            elif style == "repeating":
                fragments.append(ToolCallFragment(position, tool_call_id, name, piece))
            elif style == "no_index":
                fragments.append(
                    ToolCallFragment(None, tool_call_id if first else "", name if first else None, piece)
                )
            elif style == "anthropic":
                fragments.append(
                    ToolCallFragment(
                        position + 1, tool_call_id if first else None, name if first else None, piece
                    )
                )
        if style == "anthropic":
            fragments.append(ToolCallEnd(position + 1))
    expected = [(f"id{position}", name, arguments) for position, (name, arguments) in enumerate(calls)]
    return fragments, expected


@pytest.mark.parametrize("style", ["openai", "repeating", "no_index", "anthropic"])
@given(data=st.data())
def test_arbitrarily_split_arguments_reassemble_exactly(style, data):
    fragments, expected = data.draw(fragmented(style))
    calls = assemble(fragments)
    assert [(call.tool_call_id, call.name, json.loads(call.arguments_json)) for call in calls] == expected
