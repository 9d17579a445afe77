"""The head of an HTTP/1.1 message at the front of a buffer, for the benchmark's
lean protocols (``bench.pbxserver`` reads requests, ``bench.rawhttp`` answers).

Only what they need is read: the first line, ``Content-Length`` and ``Connection:
close``; a chunked body is refused, as neither side ever sends one.
"""

from __future__ import annotations

__all__ = ["Head", "HeadError", "read_head"]


class HeadError(ValueError):
    """The head cannot be read (or asks for what these protocols do not do)."""


class Head:
    __slots__ = ("body_start", "close", "first_line", "length")

    def __init__(self, first_line: bytes, length: int, close: bool | None,
                 body_start: int) -> None:
        self.first_line = first_line
        self.length = length  # -1: no Content-Length
        self.close = close  # None: no Connection header; True: one said close
        self.body_start = body_start  # where the body begins in the buffer


def read_head(buf: bytearray, *, limit: int) -> Head | None:
    """The head at the front of ``buf``; None until all of it has come."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > limit:
            raise HeadError("head too large")
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    length, close = -1, None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                raise HeadError(f"bad Content-Length {value!r}") from None
            if length < 0:
                raise HeadError(f"bad Content-Length {value!r}")
        elif name == b"connection":  # a close anywhere sticks
            if value.strip().lower() == b"close":
                close = True
            elif close is None:
                close = False
        elif name == b"transfer-encoding":
            raise HeadError("chunked bodies are not supported")
    return Head(lines[0], length, close, end + 4)
