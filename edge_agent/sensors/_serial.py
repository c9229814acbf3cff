"""Base classes of the serial frame parsers: error counting and line framing.

A parser is fed bytes in whatever chunks the port delivers and returns the
readings completed by them. Bad frames never become readings: they are counted
in ``errors`` with the reason in ``last_error``, and parsing goes on.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

from ._common import Option, Options, Reading


class SerialParser:
    """Common state of every parser: counters and the optional host commands."""

    NAME = ""

    def __init__(self) -> None:
        self.errors = 0
        self.last_error = ""
        self.frames = 0

    def error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message

    def startup(self) -> bytes:
        """Bytes to write once after the port opens (b"" when none are needed)."""
        return b""

    def request(self) -> bytes:
        """Bytes to write before each poll, for devices that only answer when asked."""
        return b""

    def feed(self, data: bytes) -> list[Reading]:  # pragma: no cover - abstract
        raise NotImplementedError


class LineParser(SerialParser):
    """Splits the byte stream into lines (LF, optional CR) and parses each one.

    Options common to every line parser: ``encoding`` (default "utf-8"),
    ``max_line`` (bytes, default 4096; a longer line is an error and is skipped).
    """

    OPTIONS: Tuple[Option, ...] = (
        Option("encoding", "str", "utf-8", doc="text encoding of the lines"),
        Option("max_line", "int", 4096, minimum=16, maximum=1 << 20,
               doc="bytes; a longer line is an error and is skipped"),
    )

    def __init__(self, options: Optional[Mapping[str, Any]]):
        super().__init__()
        self.opts = Options(self.NAME, options, self.OPTIONS)
        self.encoding: str = self.opts["encoding"]
        try:
            "".encode(self.encoding)
        except LookupError:
            raise self.opts.error("encoding", f"names no known codec: {self.encoding!r}") from None
        self.max_line: int = self.opts["max_line"]
        self._buffer = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[Reading]:
        readings: list[Reading] = []
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.max_line:
                    self.error(f"{self.NAME}: line longer than {self.max_line} bytes, skipped")
                    self._buffer.clear()
                    self._overflow = True
                return readings
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            if self._overflow:  # the tail of a line already reported as too long
                self._overflow = False
                continue
            if len(line) > self.max_line:
                self.error(f"{self.NAME}: line longer than {self.max_line} bytes, skipped")
                continue
            if not line.strip():
                continue
            try:
                text = line.decode(self.encoding)
            except UnicodeDecodeError as exc:
                self.error(f"{self.NAME}: undecodable bytes ({exc.reason}) in {line[:40]!r}")
                continue
            reading = self.parse_line(text)
            if reading is not None:
                self.frames += 1
                readings.append(reading)

    def parse_line(self, line: str) -> Optional[Reading]:
        """One reading from one line, or None after calling :meth:`error`/skipping."""
        raise NotImplementedError


def convert(text: str) -> Any:
    """A field value from text: int, then float, then true/false, else the string."""
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        value = float(stripped)
    except ValueError:
        pass
    else:
        if value == value and value not in (float("inf"), float("-inf")):
            return value
        return None  # NaN and infinities cannot be written to InfluxDB
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "\"'":
        return stripped[1:-1]
    return stripped
