"""YAML with positions: every key and value knows its 1-based line and column.

The config layer needs ``file:LINE:COL`` in every message, so the document is
composed (not constructed) with PyYAML's SafeLoader and turned into a small
tree of ``YMap`` / ``YSeq`` / ``YScalar`` nodes carrying ``Mark`` values.

``${VAR}`` and ``${VAR:-default}`` are expanded in every scalar before it is
typed, so ``batch_size: ${BATCH:-500}`` is the integer 500 (a quoted scalar
stays a string). ``$${`` is a literal ``${``. The default applies when the
variable is unset or empty, as in the shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple, Union

import yaml

from ..errors import ConfigError

__all__ = ["Mark", "YMap", "YNode", "YScalar", "YSeq", "load_yaml", "plain"]

_VAR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


@dataclass(frozen=True)
class Mark:
    """A 1-based position in the config file."""

    line: int
    col: int


@dataclass
class YScalar:
    """A scalar: ``value`` typed as YAML would (int, float, bool, None, str, ...).

    ``text`` is the scalar's text after interpolation; ``interpolated`` says
    whether it came (partly) from ``${...}``.
    """

    mark: Mark
    value: Any
    text: str
    interpolated: bool = False


@dataclass
class YSeq:
    mark: Mark
    items: List[YNode] = field(default_factory=list)


@dataclass
class YMap:
    """A mapping; keys are the key scalars' text, in file order."""

    mark: Mark
    items: Dict[str, Tuple[Mark, YNode]] = field(default_factory=dict)


YNode = Union[YScalar, YSeq, YMap]


def _mark(mark: Any) -> Mark:
    return Mark(mark.line + 1, mark.column + 1)


def _index_mark(text: str, index: int) -> Mark:
    line = text.count("\n", 0, index) + 1
    return Mark(line, index - (text.rfind("\n", 0, index) + 1) + 1)


def load_yaml(text: str, path: str, env: Mapping[str, str]) -> Optional[YNode]:
    """Parse ``text``; None for an empty document. Raises ConfigError with a position."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = _mark(mark) if mark is not None else Mark(1, 1)
            problem = exc.problem or exc.context or "invalid YAML"
            if "\t" in problem or "'\\t'" in problem:
                problem += " (indent with spaces, not tabs)"
            raise ConfigError(
                f"{path}:{where.line}:{where.col}: YAML syntax error: {problem}"
            ) from None
        except yaml.reader.ReaderError as exc:
            where = _index_mark(text, exc.position)
            raise ConfigError(
                f"{path}:{where.line}:{where.col}: YAML syntax error: "
                f"character {exc.character!r} is not allowed in a YAML file"
            ) from None
        if root is None:
            return None
        return _Builder(loader, text, path, env).build(root)
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, text: str, path: str, env: Mapping[str, str]):
        self.loader = loader
        self.text = text
        self.path = path
        self.env = env

    def error(self, mark: Mark, message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{mark.line}:{mark.col}: {message}")

    def build(self, node: yaml.Node) -> YNode:
        mark = _mark(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            own = {id(key) for key, _ in node.value}
            try:
                self.loader.flatten_mapping(node)  # YAML merge keys (<<: *base)
            except yaml.MarkedYAMLError as exc:
                raise self.error(_mark(exc.problem_mark), f"YAML error: {exc.problem}") from None
            result = YMap(mark)
            merged: Set[str] = set()
            for key_node, value_node in node.value:
                key_mark = _mark(key_node.start_mark)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.error(key_mark, "a mapping key must be a plain name, "
                                     "not a list or mapping")
                key = self.interpolate(key_node)[0]
                if key in result.items and (id(key_node) not in own or key in merged):
                    merged.discard(key)  # a key of this mapping overrides a merged one
                elif key in result.items:
                    first = result.items[key][0]
                    raise self.error(
                        key_mark,
                        f"duplicate key '{key}' (first at line {first.line}); "
                        "each key may appear once per mapping",
                    )
                if id(key_node) not in own:
                    merged.add(key)
                result.items[key] = (key_mark, self.build(value_node))
            return result
        if isinstance(node, yaml.SequenceNode):
            return YSeq(mark, [self.build(item) for item in node.value])
        assert isinstance(node, yaml.ScalarNode)
        text, interpolated = self.interpolate(node)
        if interpolated and node.style is None:
            tag = self.loader.resolve(yaml.ScalarNode, text, (True, False))
            node = yaml.ScalarNode(tag, text, node.start_mark, node.end_mark, node.style)
        elif interpolated:
            node = yaml.ScalarNode(node.tag, text, node.start_mark, node.end_mark, node.style)
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.MarkedYAMLError, ValueError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.error(mark, f"bad YAML value: {problem}") from None
        return YScalar(mark, value, text, interpolated)

    def interpolate(self, node: yaml.ScalarNode) -> Tuple[str, bool]:
        raw: str = node.value
        if "${" not in raw:
            return raw, False
        out: List[str] = []
        pos = 0
        while True:
            start = raw.find("${", pos)
            if start < 0:
                out.append(raw[pos:])
                break
            if start > 0 and raw[start - 1] == "$":
                out.append(raw[pos : start - 1] + "${")
                pos = start + 2
                continue
            out.append(raw[pos:start])
            end = raw.find("}", start)
            inner = raw[start + 2 : end] if end >= 0 else raw[start + 2 :]
            match = _VAR.fullmatch(inner) if end >= 0 else None
            if match is None:
                shown = raw[start : end + 1] if end >= 0 else raw[start:]
                raise self.error(
                    self.locate(node, shown),
                    f"bad variable reference '{shown}': write ${{NAME}} or ${{NAME:-default}} "
                    "(NAME: letters, digits, _), or $${ for a literal ${",
                )
            name, default = match.group(1), match.group(2)
            value = self.env.get(name)
            if not value and default is not None:
                value = default
            if value is None:
                raise self.error(
                    self.locate(node, "${" + inner + "}"),
                    f"undefined environment variable ${{{name}}}: set {name} or give a "
                    f"default with ${{{name}:-value}}",
                )
            out.append(value)
            pos = end + 1
        return "".join(out), True

    def locate(self, node: yaml.ScalarNode, needle: str) -> Mark:
        """The position of ``needle`` inside the scalar's source text (else the scalar's)."""
        start, end = node.start_mark.index, node.end_mark.index
        found = self.text.find(needle, start, max(end, start + len(needle)))
        return _index_mark(self.text, found) if found >= 0 else _mark(node.start_mark)


def plain(node: Optional[YNode]) -> Any:
    """The node as plain Python values (dicts, lists, scalars)."""
    if node is None:
        return None
    if isinstance(node, YMap):
        return {key: plain(value) for key, (_, value) in node.items.items()}
    if isinstance(node, YSeq):
        return [plain(item) for item in node.items]
    return node.value
