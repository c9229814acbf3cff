"""A subscription's field rules: ``skip``, ``tag_keys``, ``where`` and ``decode``.

* ``skip``: field names (after flattening: ``Wifi_SSId``) that are not
  written; ``*``, ``?`` and ``[...]`` match as in shell patterns
  (``*_TotalStartTime``).
* ``tag_keys``: field names whose values become tags instead (OwnTracks
  ``tid``, Tasmota ``TempUnit``); a null or "unknown" gives no tag.
* ``where: {path: value}`` (or a list of values): only objects whose path
  holds one of the values become points; any other is rejected, with the
  reason (OwnTracks sends ``_type: lwt`` on its location topic).
* ``decode``: field names whose string holds JSON (a payload inside the
  payload); it is decoded and flattened under that name, so
  ``{"attrs": "{\"unit\": \"°C\"}"}`` gives ``attrs_unit``. A string that is
  not JSON stays a string.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
from typing import Any, Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

from .jsonpaths import MISSING_PATH, flatten, lookup, parse_path
from .values import Drop, convert

__all__ = ["FieldRules", "RuleMismatch"]


class RuleMismatch(ValueError):
    """An object that ``where`` does not keep; the message is rejected with this reason."""


def _where_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class FieldRules:
    """The compiled rules of one subscription; ``time_name`` is never a field."""

    def __init__(self, skip: Sequence[str] = (), tag_keys: Sequence[str] = (),
                 where: Optional[Mapping[str, Any]] = None, decode: Sequence[str] = (),
                 time_name: str = "") -> None:
        names = [str(n) for n in skip]
        self.skip: FrozenSet[str] = frozenset(
            [n for n in names if not any(c in n for c in "*?[")] + ([time_name] if time_name
                                                                   else []))
        globs = [fnmatch.translate(n) for n in names if any(c in n for c in "*?[")]
        self.skip_re = re.compile("|".join(globs)) if globs else None
        self.tag_keys = tuple(str(n) for n in tag_keys)
        if "time" in self.tag_keys:
            raise ValueError("tag_keys: InfluxDB refuses a tag named time")
        self.decode = frozenset(str(n) for n in decode)
        self.where: Dict[str, Tuple[Tuple[Any, ...], FrozenSet[str]]] = {}
        for path, wanted in dict(where or {}).items():
            values = wanted if isinstance(wanted, (list, tuple)) else [wanted]
            try:
                steps = parse_path(str(path))
            except ValueError as exc:
                raise ValueError(f"where: {exc}") from None
            self.where[str(path)] = (steps,
                                     frozenset(_where_text(v) for v in values))

    def keep(self, name: str) -> bool:
        if name in self.skip:
            return False
        return self.skip_re is None or not self.skip_re.match(name)

    def check(self, obj: Any) -> None:
        """Raise :class:`RuleMismatch` unless ``obj`` passes every ``where``."""
        for path, (steps, wanted) in self.where.items():
            found = lookup(obj, steps)
            if found is MISSING_PATH or _where_text(found) not in wanted:
                got = "missing" if found is MISSING_PATH else repr(found)[:40]
                raise RuleMismatch(f"{path} is {got}; this subscription keeps only "
                                   f"{path}: {', '.join(sorted(wanted))}")

    def fields(self, flat: Dict[str, Any]) -> Dict[str, Any]:
        """The flattened values to write: ``decode`` expanded, ``skip`` left out."""
        if self.decode:
            for name in [n for n in flat if n in self.decode]:
                value = flat[name]
                if isinstance(value, str):
                    try:
                        inner = json.loads(value)
                    except ValueError:
                        continue
                    del flat[name]
                    flatten(inner, name, flat)
        if not self.skip and self.skip_re is None:
            return flat
        return {k: v for k, v in flat.items() if self.keep(k)}

    def tags(self, raw: Dict[str, Any], tags: Dict[str, str],
             words: Mapping[str, bool]) -> Dict[str, str]:
        """Move the ``tag_keys`` values of ``raw`` into (a copy of) ``tags``."""
        if not self.tag_keys:
            return tags
        out = dict(tags)
        for name in self.tag_keys:
            if name in raw:
                value = raw.pop(name)
                with contextlib.suppress(Drop):  # a null or "unknown" names no series
                    out[name] = convert(name, value, "str", words)
        return out
