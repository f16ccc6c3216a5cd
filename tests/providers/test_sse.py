"""The SSE decoder alone: what it gives for the lines real servers send, split anywhere."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from toolwire.server.models.sse import SSEDecoder


def decode(body: bytes, cuts: list[int]) -> list[bytes]:
    decoder = SSEDecoder()
    payloads: list[bytes] = []
    start = 0
    for cut in sorted({min(cut, len(body)) for cut in cuts}):
        payloads += decoder.feed(body[start:cut])
        start = cut
    payloads += decoder.feed(body[start:])
    return payloads + decoder.close()


def test_the_lines_of_real_servers():
    body = (
        b": keep-alive comment\n\n"
        b'event: message_start\ndata: {"a":1}\n\n'  # named event: its data alone
        b'data:{"no":"space"}\n\n'
        b'  data: {"leading":"spaces"}\r\n\r\n'
        b"id: 7\nretry: 100\ndata: line one\ndata: line two\n\n"  # two data lines, joined
        b"data: \n\n"  # empty data is an event
        b"event: ping\n\n"  # no data: no event
        b"data: [DONE]"  # the body ends without the closing blank line
    )
    expected = [b'{"a":1}', b'{"no":"space"}', b'{"leading":"spaces"}', b"line one\nline two", b"", b"[DONE]"]
    assert decode(body, []) == expected
    assert decode(body, list(range(len(body)))) == expected  # a byte at a time


_text = st.binary(max_size=20).map(lambda raw: raw.replace(b"\n", b"").replace(b"\r", b""))


@given(
    events=st.lists(st.lists(_text, min_size=1, max_size=3), max_size=8),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_any_split_gives_the_same_payloads(events, crlf, cuts):
    end = b"\r\n" if crlf else b"\n"
    body = b"".join(b"".join(b"data: " + line + end for line in lines) + end for lines in events)
    assert decode(body, cuts) == [b"\n".join(lines) for lines in events]
