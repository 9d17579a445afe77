"""The benchmark protocols' HTTP head reader: what it takes from a head, when it
waits for more, and what it refuses."""

from __future__ import annotations

import pytest

from bench.httphead import HeadError, read_head


@pytest.mark.parametrize(("raw", "length", "close"), [
    (b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 3, None),
    (b"HTTP/1.1 200 OK\r\ncontent-length:  0 \r\nConnection: close\r\n\r\n", 0, True),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", -1, False),
    (b"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", -1, True),
])
def test_a_complete_head_gives_its_length_close_and_where_the_body_starts(
    raw: bytes, length: int, close: bool | None,
) -> None:
    head = read_head(bytearray(raw), limit=1024)
    assert head is not None
    assert (head.length, head.close) == (length, close)
    assert head.first_line == raw.split(b"\r\n", 1)[0]
    assert head.body_start == raw.index(b"\r\n\r\n") + 4


def test_an_incomplete_head_waits_unless_it_is_already_too_large() -> None:
    assert read_head(bytearray(b"POST / HTTP/1.1\r\nContent-Le"), limit=1024) is None
    with pytest.raises(HeadError, match="too large"):
        read_head(bytearray(b"POST / HTTP/1.1\r\nX: " + b"y" * 2000), limit=1024)


@pytest.mark.parametrize("header", [
    b"Content-Length: nope", b"Content-Length: -1", b"Transfer-Encoding: chunked",
])
def test_what_these_protocols_do_not_do_is_refused(header: bytes) -> None:
    with pytest.raises(HeadError):
        read_head(bytearray(b"POST / HTTP/1.1\r\n" + header + b"\r\n\r\n"), limit=1024)
