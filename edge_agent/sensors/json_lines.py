"""JSON lines: one JSON object per line, e.g. from a microcontroller.

``{"temp": 21.5, "env": {"hum": 40}}`` -> fields temp=21.5, env_hum=40.
Nested objects and arrays are flattened with ``_`` (as Telegraf's json
parser does); null values are dropped; a line that is not a JSON object is an
error.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Optional

from ._common import Option, Reading
from ._serial import LineParser


def flatten(value: Any, prefix: str, out: Reading, separator: str = "_") -> None:
    """Add the scalar leaves of ``value`` to ``out`` under joined key paths."""
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}{separator}{key}" if prefix else str(key), out, separator)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            flatten(item, f"{prefix}{separator}{index}" if prefix else str(index), out, separator)
    elif isinstance(value, float) and not math.isfinite(value):
        return  # NaN / Infinity cannot be written to InfluxDB
    elif isinstance(value, (bool, int, float, str)):
        out[prefix] = value


class JSONLines(LineParser):
    """Line parser for one JSON object per line.

    Options: ``fields`` (optional list of the flattened keys to keep),
    ``separator`` (for flattened keys, default "_"), plus ``encoding`` and
    ``max_line``. Fields: the object's scalar leaves.
    """

    NAME = "json"
    OPTIONS = LineParser.OPTIONS + (
        Option("fields", "any", None, doc="a list of the field names to keep (default: all)"),
        Option("separator", "str", "_", doc="joins the keys of nested objects"),
    )

    def __init__(self, options: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(options)
        opts = self.opts
        keep = opts["fields"]
        if keep is not None and (
            not isinstance(keep, list) or not all(isinstance(k, str) for k in keep)
        ):
            raise opts.error("fields", f"must be a list of field names, got {keep!r}")
        self.keep: Optional[set[str]] = set(keep) if keep is not None else None
        self.separator: str = opts["separator"]

    def parse_line(self, line: str) -> Optional[Reading]:
        try:
            value = json.loads(line)
        except ValueError as exc:
            self.error(f"json: invalid JSON ({exc}): {line[:60]!r}")
            return None
        if not isinstance(value, dict):
            self.error(f"json: expected an object, got {type(value).__name__}: {line[:60]!r}")
            return None
        reading: Reading = {}
        flatten(value, "", reading, self.separator)
        if self.keep is not None:
            reading = {k: v for k, v in reading.items() if k in self.keep}
        if not reading:
            self.error(f"json: no usable fields in {line[:60]!r}")
            return None
        return reading
