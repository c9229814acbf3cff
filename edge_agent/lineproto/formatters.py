"""Compiled formatters: one generated function per field layout and value types.

Like ``collections.namedtuple``, a formatter is generated with ``exec``: values
fetched by name, type checks and the NaN/Inf test inline, and the whole line as
one f-string with the escaped ``key=`` prefixes as literal text. The series key
is an argument, so one formatter serves every series with the same fields.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from .escape import _ESCAPE_STRING

# Field keys sorted as written, each with its escaped ``key=`` prefix.
_Layout = Tuple[Tuple[Any, str], ...]
# ``formatter(fields, series, stamp)``: the whole line, or ``None`` when a value
# is not of the type it was compiled for (or is NaN/Inf): then the general
# loop in ``LineEncoder`` writes the line.
_Formatter = Callable[[Mapping[Any, Any], str, Optional[int]], Optional[str]]

_COMPILED_TYPES = (float, int, str, bool)
_FORMATTER_MAX = 512
# (layout, value types) -> formatter; ``None`` means seen once, not compiled yet.
_FORMATTERS: Dict[Tuple[_Layout, Tuple[type, ...]], Optional[_Formatter]] = {}


def _compile_formatter(layout: _Layout, types: Tuple[type, ...]) -> _Formatter:
    """Generate one function for one field layout and its value types.

    Like ``collections.namedtuple``, the source is generated and ``exec``'d: the
    values are fetched by name, type-checked inline, and the line is one
    f-string with the escaped ``key=`` prefixes as literal text -- no loop, no
    list, no join. Next to the general loop this cuts what a line costs
    beyond ``repr`` of its floats by half; the reprs are the floor (the output
    must be byte-identical to the reference client's ``str(float)``). Only
    ``repr``-quoted keys and prefixes and generated names reach the source.
    """
    fetch = []
    checks = []
    parts = []
    for i, ((name, prefix), kind) in enumerate(zip(layout, types)):
        value = f"v{i}"
        fetch.append(f"    {value} = fields[{name!r}]")
        checks.append(f"type({value}) is {kind.__name__}")
        literal = prefix.replace("{", "{{").replace("}", "}}")
        if kind is float:
            checks.append(f"{value} - {value} == 0.0")  # not NaN or +-Inf
            parts.append(f"{literal}{{repr({value}).removesuffix(_DOT0)}}")
        elif kind is int:
            parts.append(f"{literal}{{{value}}}i")
        elif kind is str:
            parts.append(f'{literal}"{{{value}.translate(_ESCAPE_STRING)}}"')
        else:
            parts.append(f"{literal}{{_BOOL[{value}]}}")
    line = "{series} " + ",".join(parts)
    source = "\n".join((
        "def formatter(fields, series, stamp):",
        *fetch,
        f"    if not ({' and '.join(checks)}):",
        "        return None",
        "    if stamp is None:",
        f"        return f{line!r}",
        f"    return f{line + ' {stamp}'!r}",
    ))
    namespace: Dict[str, Any] = {
        "_DOT0": ".0", "_ESCAPE_STRING": _ESCAPE_STRING, "_BOOL": ("false", "true"),
    }
    exec(source, namespace)  # generated from repr-quoted literals only
    formatter: _Formatter = namespace["formatter"]
    return formatter


def _formatter(layout: _Layout, types: Tuple[type, ...]) -> Optional[_Formatter]:
    """The compiled formatter for this layout and these types, or ``None``.

    Compiling costs ~150 us, about fifty lines' worth, so a layout is compiled
    the second time it is seen: field sets seen once (a hypothesis test, a
    payload with changing keys) never pay for it. ``layout`` keys must be
    exact ``str`` (the encoder caches only such shapes).
    """
    key = (layout, types)
    if key in _FORMATTERS:
        found = _FORMATTERS[key]
        if found is None:
            found = _FORMATTERS[key] = _compile_formatter(layout, types)
        return found
    if all(kind in _COMPILED_TYPES for kind in types):
        if len(_FORMATTERS) >= _FORMATTER_MAX:
            _FORMATTERS.clear()
        _FORMATTERS[key] = None
    return None
