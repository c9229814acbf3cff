from __future__ import annotations

import pytest

from edge_agent.config.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("10s", 10.0), ("5m", 300.0), ("2h", 7200.0), ("7d", 604800.0),
     ("1h30m", 5400.0), ("1.5s", 1.5), ("10 s", 10.0), ("0s", 0.0), ("10S", 10.0)],
)
def test_duration_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_plain_numbers_use_the_callers_unit() -> None:
    assert parse_duration(5) == 5.0
    assert parse_duration("5") == 5.0
    assert parse_duration(5000, plain_unit="ms") == 5.0
    assert parse_duration(2.5, plain_unit="ms") == 0.0025


@pytest.mark.parametrize("bad", ["10 sec", "s", "", "ten", "5x", "-1s", True, None, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(bad)


def test_bad_duration_message_names_the_plain_unit() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("soon", plain_unit="ms")
    assert str(info.value) == (
        "bad duration 'soon': use a number with a unit ms, s, m, h or d "
        "(e.g. 250ms, 10s, 5m, 2h, 7d); a plain number is milliseconds"
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [("256MiB", 256 * 1024**2), ("1GB", 10**9), ("512KiB", 512 * 1024), (1024, 1024),
     ("1024", 1024), ("10 MiB", 10 * 1024**2), ("1.5KiB", 1536), ("2gib", 2 * 1024**3),
     ("100B", 100)],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["256M", "lots", "1 GBB", "-5", -5, True, None])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ValueError, match="bad size"):
        parse_size(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (10, "10s"), (300, "5m"), (7200, "2h"), (604800, "7d"), (0, "0s"),
     (90, "90s"), (0.0001, "0.0001s")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("size", "text"),
    [(256 * 1024**2, "256MiB"), (10**9, "1GB"), (1536, "1536"), (0, "0"), (512 * 1024, "512KiB")],
)
def test_format_size_round_trips(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size
