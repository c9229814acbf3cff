"""Line protocol escaping and field values.

Rules (InfluxDB's line protocol reference, see shared/reference/VECTORS.md):

* measurement: escape ``,`` and space;
* tag keys, tag values, field keys: escape ``,`` ``=`` and space;
* string field values: double-quoted, escape ``"`` and ``\\``;
* integers end in ``i``, unsigned in ``u``; floats in shortest round-trip form
  with a trailing ``.0`` removed; NaN and +-Inf cannot be written and are
  dropped (and counted);
* tags sorted by key, empty tag values omitted; a point with no field left
  gives no line at all;
* a newline (``\\n`` or ``\\r``) cannot be escaped in a name, so it is a
  ``ValueError`` that names the offending part.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Optional

__all__ = ["escape_key", "escape_measurement", "escape_string", "escape_tag_value",
           "format_field_value"]

_ESCAPE_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_ESCAPE_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_ESCAPE_STRING = str.maketrans({'"': '\\"', "\\": "\\\\"})



def _check_name(value: str, part: str) -> None:
    if not value:
        raise ValueError(f"{part} must not be empty")
    if "\n" in value or "\r" in value:
        raise ValueError(f"{part} {value!r} contains a newline, which line protocol cannot carry")


def escape_measurement(name: Any) -> str:
    """Escape a measurement name; empty or newline-bearing names raise ValueError."""
    text = str(name)
    _check_name(text, "measurement")
    return text.translate(_ESCAPE_MEASUREMENT)


def escape_key(key: Any, part: str = "key") -> str:
    """Escape a tag key or field key; empty or newline-bearing keys raise ValueError."""
    text = str(key)
    _check_name(text, part)
    return text.translate(_ESCAPE_KEY)


def escape_tag_value(value: Any, key: Any = "") -> str:
    """Escape a tag value (the caller drops empty ones)."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(
            f"tag {key!r} value {text!r} contains a newline, which line protocol cannot carry"
        )
    out = text.translate(_ESCAPE_KEY)
    # A trailing backslash would escape the separator that follows; the
    # reference client pads it with a space, and so do we (same bytes).
    if out.endswith("\\"):
        out += " "
    return out


def escape_string(value: str) -> str:
    return value.translate(_ESCAPE_STRING)


# --------------------------------------------------------------------------- fields

_NOT_FINITE = None  # marker returned for NaN / Inf


def _format_float(value: float) -> Optional[str]:
    if value - value != 0.0:  # NaN and +-Inf (inf - inf is NaN)
        return None
    text = repr(value)
    if text.endswith(".0"):
        return text[:-2]
    return text


_INT64_MAX = 2**63 - 1


def _format_numpy_float(value: Any) -> Optional[str]:
    """A numpy float in its own type's shortest repr, as the reference writes it:
    ``str(np.float32(1.1))`` is ``1.1`` where ``float()`` would give 1.100000023841858."""
    if not bool(value - value == 0):  # NaN and +-Inf
        return None
    text = str(value)
    return text[:-2] if text.endswith(".0") else text


def _format_other(value: Any, int_suffix: str, key: Any = None) -> Optional[str]:
    """Slow path for subclasses, numpy scalars, Decimal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{int(value)}{int_suffix}"
    if isinstance(value, float):
        return _format_float(float(value))
    if isinstance(value, str):
        return '"' + value.translate(_ESCAPE_STRING) + '"'
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        text = str(value)  # the reference's digits: Decimal("1.10") is 1.10
        return text[:-2] if text.endswith(".0") else text
    dtype = getattr(value, "dtype", None)
    if dtype is not None:  # numpy / pandas scalar
        kind = getattr(dtype, "kind", "")
        if kind == "f":
            return _format_numpy_float(value)
        if kind == "i":
            return f"{int(value)}{int_suffix}"
        if kind == "u":
            # Written as the reference writes it (``i``), so a field it stored as an
            # integer keeps its type; only a value beyond int64, which ``i`` cannot
            # carry, is written as unsigned.
            number = int(value)
            suffix = "u" if int_suffix == "i" and number > _INT64_MAX else int_suffix
            return f"{number}{suffix}"
        if kind == "b":
            return "true" if bool(value) else "false"
    where = f" of field {str(key)!r}" if key is not None else ""
    raise ValueError(f"field value {value!r}{where} has type {type(value).__name__}, which "
                     "line protocol cannot carry: use int, float, bool or str")


def format_field_value(value: Any, int_suffix: str = "i") -> Optional[str]:
    """Format one field value; ``None`` means "cannot be written" (NaN, Inf).

    ``int_suffix`` is ``i`` (int64), ``u`` (uint64) or ``""`` (write as float).
    """
    kind = type(value)
    if kind is float:
        return _format_float(value)
    if kind is int:
        return f"{value}{int_suffix}"
    if kind is str:
        return '"' + value.translate(_ESCAPE_STRING) + '"'
    if kind is bool:
        return "true" if value else "false"
    return _format_other(value, int_suffix)
