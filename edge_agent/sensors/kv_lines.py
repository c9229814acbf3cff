"""Key=value lines: ``temp=21.5 hum=40`` or ``temp=21.5,hum=40``.

Pairs are separated by whitespace and/or commas (or the ``separator`` option);
values become integers, floats, booleans (true/false) or strings (quotes
stripped). A token without the delimiter makes the whole line an error.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from ._common import Option, Reading
from ._serial import LineParser, convert


class KVLines(LineParser):
    """Line parser for key=value pairs.

    Options: ``separator`` (between pairs; default: whitespace and/or commas),
    ``delimiter`` (between key and value, default "="), plus ``encoding`` and
    ``max_line``. Fields: one per pair.
    """

    NAME = "kv"
    OPTIONS = LineParser.OPTIONS + (
        Option("separator", "any", None, doc="between pairs (default: spaces or commas)"),
        Option("delimiter", "str", "=", doc="between key and value"),
    )

    def __init__(self, options: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(options)
        opts = self.opts
        separator = opts["separator"]
        if separator is not None and (not isinstance(separator, str) or not separator):
            raise opts.error("separator", f"must be a non-empty string, got {separator!r}")
        self.split = re.compile(re.escape(separator) if separator else r"[\s,]+")
        self.delimiter: str = opts["delimiter"]

    def parse_line(self, line: str) -> Optional[Reading]:
        reading: Reading = {}
        for token in self.split.split(line.strip()):
            if not token:
                continue
            key, delimiter, text = token.partition(self.delimiter)
            key = key.strip()
            if not delimiter or not key:
                self.error(f"kv: {token!r} is not key{self.delimiter}value in {line[:60]!r}")
                return None
            value = convert(text)
            if value is not None and value != "":
                reading[key] = value
        if not reading:
            self.error(f"kv: no pairs in {line[:60]!r}")
            return None
        return reading
