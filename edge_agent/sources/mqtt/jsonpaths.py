"""JSON documents -> named values: paths (``a.b[0]``) and flattening (``by_minute_0``).

* A path is keys joined by ``.``, with ``[n]`` for the n-th element of an
  array: ``aenergy.by_minute[0]``, ``params.switch:0.apower``. A key made of
  digits also indexes an array (``readings.0``), as before.
* Flattening joins the keys of nested objects with ``_`` and the indexes of
  arrays the same way: ``{"aenergy": {"by_minute": [1, 2]}}`` gives
  ``aenergy_by_minute_0`` and ``aenergy_by_minute_1``. Nulls are kept (as
  None) so the parser can drop and count them; empty objects and arrays give
  nothing.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Tuple, Union

__all__ = ["MISSING_PATH", "flatten", "lookup", "parse_path", "path_name"]

Step = Union[str, int]
_INDEX = re.compile(r"\[(\d+)\]")
MISSING_PATH = object()  # lookup's answer for a path that is not in the document


def parse_path(path: str) -> Tuple[Step, ...]:
    """``a.b[0].c`` -> ``("a", "b", 0, "c")``; ValueError for a malformed path."""
    steps: list = []
    for part in path.split("."):
        head, bracket, rest = part.partition("[")
        if not head and not bracket:
            raise ValueError(f"path {path!r} has an empty key (two dots, or a dot at an end)")
        if head:
            steps.append(head)
        if bracket:
            tail = "[" + rest
            indexes = _INDEX.findall(tail)
            if _INDEX.sub("", tail):
                raise ValueError(f"path {path!r}: {tail!r} is not [n] (an array index)")
            steps.extend(int(i) for i in indexes)
    return tuple(steps)


def path_name(steps: Tuple[Step, ...]) -> str:
    """The flattened field name of a path: ``a.b[0]`` -> ``a_b_0``."""
    return "_".join(str(step) for step in steps)


def lookup(doc: Any, steps: Tuple[Step, ...]) -> Any:
    """The value at ``steps`` (None for JSON null), or :data:`MISSING_PATH`."""
    current = doc
    for step in steps:
        if isinstance(current, dict):
            key = step if isinstance(step, str) else str(step)
            if key not in current:
                return MISSING_PATH
            current = current[key]
        elif isinstance(current, list):
            index = step if isinstance(step, int) else (int(step) if step.isdigit() else -1)
            if not 0 <= index < len(current):
                return MISSING_PATH
            current = current[index]
        else:
            return MISSING_PATH
    return current


def flatten(doc: Any, prefix: str, out: Dict[str, Any]) -> None:
    """Every scalar of ``doc`` into ``out`` under its joined name (``prefix`` first)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            name = f"{prefix}_{key}" if prefix else str(key)
            if isinstance(value, (dict, list)):
                flatten(value, name, out)
            else:
                out[name] = value
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            name = f"{prefix}_{index}" if prefix else str(index)
            if isinstance(value, (dict, list)):
                flatten(value, name, out)
            else:
                out[name] = value
    else:
        out[prefix or "value"] = doc
