"""One backoff: every retry loop in the sources waits what RetrySchedule says.

The poll backoff of a failing device (DeviceBackoff), the MQTT reconnect delay
(backoff_delay) and the MQTT source's sink retry each computed their own
doubling before; now each is a RetrySchedule with its own policy. Each test
compares against the schedule itself (and a patched schedule), so a private
copy of the arithmetic anywhere would fail.
"""

from __future__ import annotations

import random
import threading
import types

import pytest

from edge_agent.retry import RetrySchedule
from edge_agent.sources.mqtt import source as mqtt_source
from edge_agent.sources.mqtt.client import backoff_delay
from edge_agent.sources.schedule import DeviceBackoff


def test_device_backoff_is_the_schedules_nominal_delay() -> None:
    policy = RetrySchedule(retry_interval=0.5, max_retry_delay=30.0)
    backoff = DeviceBackoff(base=0.5, cap=30.0)
    assert [backoff.delay(k) for k in range(1, 10)] == [policy.nominal(k) for k in range(1, 10)]


def test_device_backoff_follows_a_changed_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RetrySchedule, "nominal", lambda self, k: 42.0 + k)
    assert DeviceBackoff(base=1.0).failed(100.0).retry_at == 143.0


def test_mqtt_reconnect_delay_is_the_schedule_from_half_the_base() -> None:
    # cap 30 s, base 1 s: [0.5,1) [1,2) ... [8,16) [16,30), then the band [21,30)
    rng, reference = random.Random(4), random.Random(4)
    schedule = RetrySchedule(retry_interval=0.5, max_retry_delay=30.0)
    for attempt in range(1, 12):
        expected, schedule = schedule.next(0.0, reference)
        assert backoff_delay(attempt, 30.0, rng) == pytest.approx(expected, rel=1e-12)
    at_cap = [backoff_delay(20, 30.0, rng) for _ in range(200)]
    assert all(21.0 <= d < 30.0 for d in at_cap) and len(set(at_cap)) == 200


def test_mqtt_sink_retry_waits_the_schedules_nominal_delays(
        monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list = []
    monkeypatch.setattr(mqtt_source.time, "sleep", slept.append)
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] <= 8:
            raise OSError("No space left on device")
        return "ok"

    fake = types.SimpleNamespace(counters={}, name="m", _stop=threading.Event(),
                                 _throttle=types.SimpleNamespace(warning=lambda *args: None))
    assert mqtt_source.MqttSource._retry(fake, "add to the buffer", flaky) == (True, "ok")
    policy = RetrySchedule(retry_interval=0.1, max_retry_delay=5.0)
    assert slept == [policy.nominal(k) for k in range(1, 9)]
    assert slept[-1] == 5.0 and "No space left" in fake.counters["last_error"]
