"""WriteOptions, SYNCHRONOUS/ASYNCHRONOUS and PointSettings: the seed's shape, validated."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import edge_agent
from edge_agent.options import (
    ASYNCHRONOUS,
    SYNCHRONOUS,
    PointSettings,
    WriteOptions,
    WriteType,
)

SEED_FIELDS = [
    ("write_type", WriteType.batching), ("batch_size", 1000), ("flush_interval", 1000),
    ("jitter_interval", 0), ("retry_interval", 5000), ("max_retries", 5),
    ("max_retry_delay", 125000), ("max_retry_time", 180000), ("exponential_base", 2),
    ("max_close_wait", 300000), ("write_scheduler", None),
]
OUR_FIELDS = [
    ("buffer_dir", None), ("commit_interval", 100), ("max_batch_bytes", 8 * 1024 * 1024),
    ("max_size", 256 * 1024 * 1024), ("max_age", 7 * 24 * 3600), ("sync", "normal"),
]


def test_names_order_and_defaults():
    params = list(inspect.signature(WriteOptions).parameters.values())
    assert [(p.name, p.default) for p in params] == SEED_FIELDS + OUR_FIELDS


def test_seed_positional_order_matches_the_reference_client():
    seed = pytest.importorskip("influxdb_client.client.write_api")
    names = list(inspect.signature(seed.WriteOptions.__init__).parameters)[1:]
    ours = [f.name for f in dataclasses.fields(WriteOptions)]
    assert ours[: len(names)] == names
    # a positional call written for the seed means the same here
    options = WriteOptions(WriteType.batching, 500, 2000, 10, 100, 3, 4000, 9000, 3, 7000)
    assert (options.batch_size, options.flush_interval, options.jitter_interval) == (500, 2000, 10)
    assert (options.retry_interval, options.max_retries, options.max_retry_delay) == (100, 3, 4000)
    assert (options.max_retry_time, options.exponential_base, options.max_close_wait) == (
        9000, 3, 7000)


def test_synchronous_and_asynchronous_constants():
    assert SYNCHRONOUS.write_type is WriteType.synchronous
    assert ASYNCHRONOUS.write_type is WriteType.asynchronous
    assert WriteOptions().write_type is WriteType.batching
    assert edge_agent.SYNCHRONOUS is SYNCHRONOUS and edge_agent.WriteOptions is WriteOptions


def test_options_are_frozen_values():
    options = WriteOptions(batch_size=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 20  # type: ignore[misc]
    assert dataclasses.replace(options, batch_size=20).batch_size == 20
    assert WriteOptions(batch_size=10) == options


def test_write_scheduler_is_accepted_and_ignored():
    scheduler = object()
    options = WriteOptions(write_scheduler=scheduler)
    assert options.write_scheduler is scheduler
    assert options == WriteOptions()  # not part of the value


def test_write_type_sync_and_counts_accept_config_spellings(tmp_path: Path):
    options = WriteOptions(batch_size=500.0, max_size=1e6)  # type: ignore[arg-type]
    assert options.batch_size == 500 and type(options.batch_size) is int
    assert options.max_size == 1_000_000 and type(options.max_size) is int
    assert WriteOptions(write_type="Synchronous").write_type is WriteType.synchronous  # type: ignore[arg-type]
    assert WriteOptions(sync="FULL").sync == "full"
    options = WriteOptions(buffer_dir=tmp_path)  # type: ignore[arg-type]
    assert options.buffer_dir == str(tmp_path) and options.durable
    assert not WriteOptions().durable


@pytest.mark.parametrize("kwargs, words", [
    ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ({"batch_size": 1.5}, "batch_size must be an integer, got 1.5"),
    ({"batch_size": True}, "batch_size must be an integer"),
    ({"flush_interval": 0}, "flush_interval must be greater than 0"),
    ({"jitter_interval": -1}, "jitter_interval must be at least 0"),
    ({"retry_interval": 0}, "retry_interval must be greater than 0"),
    ({"max_retries": -1}, "max_retries must be at least 0"),
    ({"max_retry_delay": 0}, "max_retry_delay must be greater than 0"),
    ({"max_retry_time": -5}, "max_retry_time must be at least 0"),
    ({"exponential_base": 0.5}, "exponential_base must be at least 1"),
    ({"exponential_base": "2"}, "exponential_base must be a number, got '2'"),
    ({"max_close_wait": -1}, "max_close_wait must be at least 0"),
    ({"commit_interval": 0}, "commit_interval must be greater than 0"),
    ({"max_batch_bytes": 0}, "max_batch_bytes must be at least 1"),
    ({"max_size": 0}, "max_size must be at least 1"),
    ({"max_age": 0}, "max_age must be greater than 0"),
    ({"max_age": float("nan")}, "max_age must be greater than 0"),
    ({"sync": "sometimes"}, "sync must be one of normal, full, got 'sometimes'"),
    ({"write_type": "eventually"}, "write_type 'eventually' is not one of batching"),
    ({"buffer_dir": ""}, "buffer_dir must be a directory path"),
])
def test_invalid_values_give_clear_messages(kwargs, words):
    with pytest.raises(ValueError) as caught:
        WriteOptions(**kwargs)
    assert words in str(caught.value)


def test_point_settings_default_tags_and_env(monkeypatch):
    monkeypatch.setenv("EDGE_TEST_SITE", "greenhouse-2")
    monkeypatch.delenv("EDGE_TEST_UNSET", raising=False)
    settings = PointSettings(room="north", site="${env.EDGE_TEST_SITE}")
    settings.add_default_tag("unset", "${env.EDGE_TEST_UNSET}")
    settings.add_default_tag("rack", "3")
    assert settings.defaultTags == {"room": "north", "site": "greenhouse-2", "unset": None,
                                    "rack": "3"}
    assert settings.default_tags == {"room": "north", "site": "greenhouse-2", "rack": "3"}
    assert PointSettings(a="1") == PointSettings(a="1") != PointSettings(a="2")
    assert "room" in repr(settings)
