"""Regex lines: named groups of a regular expression become fields.

``pattern: 'T=(?P<temperature>[-\\d.]+)C H=(?P<humidity>\\d+)%'`` turns
``T=21.5C H=40%`` into temperature=21.5, humidity=40. Numbers are converted
(int, then float), true/false to booleans, anything else stays a string;
groups that did not take part in the match are left out. A line the pattern
does not match is counted as an error.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from ._common import Option, Reading
from ._serial import LineParser, convert


class RegexLines(LineParser):
    """Line parser driven by a regular expression with named groups.

    Options: ``pattern`` (required; searched anywhere in the line),
    ``fullmatch`` (default false: the whole line must match when true), plus
    ``encoding`` and ``max_line``. Fields: the named groups.
    """

    NAME = "regex"
    OPTIONS = LineParser.OPTIONS + (
        Option("pattern", "str", required=True, doc="named groups become fields"),
        Option("fullmatch", "bool", False),
    )

    def __init__(self, options: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(options)
        opts = self.opts
        pattern = opts["pattern"]
        try:
            self.pattern = re.compile(pattern)
        except re.error as exc:
            raise opts.error("pattern", f"is not a valid regular expression: {exc}") from None
        if not self.pattern.groupindex:
            raise opts.error("pattern", "needs named groups such as (?P<temperature>[-\\d.]+)")
        self.fullmatch: bool = opts["fullmatch"]

    def parse_line(self, line: str) -> Optional[Reading]:
        match = (self.pattern.fullmatch if self.fullmatch else self.pattern.search)(line)
        if match is None:
            self.error(f"regex: line does not match the pattern: {line[:60]!r}")
            return None
        reading: Reading = {}
        for name, text in match.groupdict().items():
            if text is None:
                continue
            value = convert(text)
            if value is not None and value != "":
                reading[name] = value
        if not reading:
            self.error(f"regex: the match has no values: {line[:60]!r}")
            return None
        return reading
