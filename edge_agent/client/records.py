"""Record kinds -> lines of line protocol.

What ``write(record=...)`` accepts, as in the seed: line protocol ``str`` or
``bytes`` (one or many lines), :class:`Point`, ``dict``, dataclass and
namedtuple instances, pandas ``DataFrame``, and any iterable or generator of
these (consumed lazily). Every kind goes through one :class:`LineEncoder`, so
escaping, default tags and precision are decided in one place.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional

from ..lineproto.encoder import Drops
from .point import ClientEncoder, Point

__all__ = ["Serializer", "RECORD_KWARGS"]

# The keyword arguments ``write()`` passes through to the serializers.
RECORD_KWARGS = frozenset({
    "record_measurement_key",
    "record_measurement_name",
    "record_time_key",
    "record_tag_keys",
    "record_field_keys",
    "field_types",
    "data_frame_measurement_name",
    "data_frame_tag_columns",
    "data_frame_timestamp_column",
    "data_frame_timestamp_timezone",
})

_INT_SUFFIX = {"int": "i", "uint": "u", "float": ""}


def _split_text(text: str) -> Iterator[str]:
    # Only "\n" ends a line: str.splitlines() would also cut at \r, \x1c, \u2028...
    for raw in text.split("\n"):
        line = raw.strip()
        if line:
            yield line


class Serializer:
    """Serializes records for one writer: its precision, its default tags."""

    def __init__(
        self,
        precision: Any = "ns",
        default_tags: Optional[Mapping[str, Any]] = None,
        drops: Optional[Drops] = None,
    ) -> None:
        self.encoder = ClientEncoder(precision, default_tags, drops)
        self.precision = self.encoder.precision

    # Public ---------------------------------------------------------------

    def lines(self, record: Any, **kwargs: Any) -> Iterator[str]:
        """Yield one line (no newline) per writable point in ``record``.

        Iterables and generators are consumed lazily, one record at a time.
        """
        kind = type(record)
        if kind is str:
            yield from _split_text(record)
        elif kind is bytes or kind is bytearray or kind is memoryview:
            yield from _split_text(bytes(record).decode("utf-8"))
        elif kind is Point:
            line = self._point(record)
            if line is not None:
                yield line
        elif kind is dict:
            line = self._dict(record, kwargs)
            if line is not None:
                yield line
        elif kind is list or kind is tuple:
            yield from self._sequence(record, kwargs)
        else:
            yield from self._other(record, kwargs)

    def to_list(self, record: Any, **kwargs: Any) -> List[str]:
        if type(record) is list or type(record) is tuple:
            return list(self._sequence(record, kwargs))  # one generator layer fewer
        return list(self.lines(record, **kwargs))

    def to_bytes(self, record: Any, **kwargs: Any) -> bytes:
        """All lines of ``record`` joined by ``\\n`` (no trailing newline)."""
        if type(record) is list or type(record) is tuple:
            # The common batch: one generator layer fewer (~3% of a dict's cost).
            return "\n".join(self._sequence(record, kwargs)).encode("utf-8")
        return "\n".join(self.lines(record, **kwargs)).encode("utf-8")

    def _sequence(self, records: Iterable[Any], kwargs: Mapping[str, Any]) -> Iterator[str]:
        """A list of records: dicts in the default shape and Points without
        any per-item generator or keyword-argument handling (the common batch)."""
        encode = self.encoder.encode
        for item in records:
            kind = type(item)
            if kind is dict and not kwargs:
                types = item.get("field_types")
                line = encode(
                    item["measurement"], item.get("tags"), item["fields"], item.get("time"),
                    None, _int_types(types) if types else None,
                )
            elif kind is Point:
                line = encode(item._name, item._tags, item._fields, item._time,
                              item._write_precision, item._field_types)
            else:
                yield from self.lines(item, **kwargs)
                continue
            if line is not None:
                yield line

    # Kinds ----------------------------------------------------------------

    def _point(self, point: Point) -> Optional[str]:
        return self.encoder.encode(
            point._name, point._tags, point._fields, point._time, point._write_precision,
            point._field_types,
        )

    def _dict(self, record: Mapping[str, Any], kwargs: Mapping[str, Any]) -> Optional[str]:
        if not kwargs:
            fields = record["fields"]
            types = record.get("field_types")
            return self.encoder.encode(
                record["measurement"], record.get("tags"), fields, record.get("time"),
                None, _int_types(types) if types else None,
            )
        name = kwargs.get("record_measurement_name")
        if name is None:
            name = record[kwargs.get("record_measurement_key", "measurement")]
        tag_keys = kwargs.get("record_tag_keys")
        tags = ({k: record[k] for k in tag_keys if k in record} if tag_keys is not None
                else record.get("tags"))
        field_keys = kwargs.get("record_field_keys")
        fields = ({k: record[k] for k in field_keys if k in record} if field_keys is not None
                  else record["fields"])
        types = record.get("field_types", kwargs.get("field_types"))
        return self.encoder.encode(
            name, tags, fields, record.get(kwargs.get("record_time_key", "time")), None,
            _int_types(types) if types else None,
        )

    def _attrs(self, record: Any, values: Mapping[str, Any], kwargs: Mapping[str, Any]
               ) -> Optional[str]:
        """A dataclass or namedtuple, described by the record_* keyword arguments."""
        name = kwargs.get("record_measurement_name")
        if name is None:
            key = kwargs.get("record_measurement_key")
            if key is None:
                raise ValueError(
                    f"{type(record).__name__} record needs record_measurement_name "
                    "or record_measurement_key")
            name = values[key]
        tag_keys = kwargs.get("record_tag_keys") or ()
        field_keys = kwargs.get("record_field_keys")
        if field_keys is None:
            time_key = kwargs.get("record_time_key")
            skip = set(tag_keys) | {kwargs.get("record_measurement_key"), time_key}
            field_keys = [k for k in values if k not in skip]
        time_key = kwargs.get("record_time_key")
        types = kwargs.get("field_types")
        return self.encoder.encode(
            name,
            {k: values[k] for k in tag_keys},
            {k: values[k] for k in field_keys},
            values.get(time_key) if time_key else None,
            None,
            _int_types(types) if types else None,
        )

    def _other(self, record: Any, kwargs: Mapping[str, Any]) -> Iterator[str]:
        if isinstance(record, Point):
            line = self._point(record)
            if line is not None:
                yield line
        elif isinstance(record, str):
            yield from _split_text(record)
        elif isinstance(record, (bytes, bytearray)):
            yield from _split_text(bytes(record).decode("utf-8"))
        elif isinstance(record, Mapping):
            line = self._dict(record, kwargs)
            if line is not None:
                yield line
        elif dataclasses.is_dataclass(record) and not isinstance(record, type):
            values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
            line = self._attrs(record, values, kwargs)
            if line is not None:
                yield line
        elif isinstance(record, tuple) and hasattr(record, "_asdict"):
            line = self._attrs(record, record._asdict(), kwargs)
            if line is not None:
                yield line
        elif _is_dataframe(record):
            from .dataframe import dataframe_lines

            yield from dataframe_lines(record, self.encoder, **kwargs)
        elif isinstance(record, Iterable):
            for item in record:
                yield from self.lines(item, **kwargs)
        else:
            raise TypeError(
                f"record of type {type(record).__name__} is not supported: use line protocol "
                "str/bytes, Point, dict, a dataclass or namedtuple, a DataFrame, or a list of these"
            )


def _int_types(types: Mapping[str, str]) -> Dict[str, str]:
    return {k: _INT_SUFFIX.get(v, "i") for k, v in types.items()}


def _is_dataframe(record: Any) -> bool:
    # No pandas import here: checking the class name keeps `import edge_agent` light.
    cls = type(record)
    return cls.__name__ == "DataFrame" and cls.__module__.startswith("pandas")
