"""Thousands of random payloads and topics through the real broker, valid ones among them.

The bridge must stay connected, count every message exactly once (received =
accepted + rejected, unmatched for topics no subscription owns) and deliver
every valid message.
"""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any, List, Tuple

from edge_agent.sources.mqtt.source import MqttSource
from edge_agent.sources.mqtt.topics import TopicTemplate
from tests.harness.mqtt import Publisher, mqtt_config
from tests.harness.sinks import MemorySink
from tests.harness.waits import wait_for

ALPHABET = "ab z,=/\\\"{}é€\t-_.+#"
# mosquitto disconnects a client that publishes a topic with control characters.
TOPIC_ALPHABET = ALPHABET.replace("\t", "")


def random_topic(rng: random.Random, prefix: str) -> str:
    level = "".join(rng.choice(TOPIC_ALPHABET) for _ in range(rng.randrange(0, 6)))
    level = level.replace("+", "p").replace("#", "h")  # wildcards cannot be published
    return f"{prefix}/{rng.choice(['v', 'j', 'k', 'lp', 'x'])}/{level}"


def random_payload(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if kind == 1:
        return rng.choice([b"nan", b"inf", b"-Infinity", b'{"a": NaN}', b"{", b"[]", b"",
                           b'{"a": {"b": [1, {"c": 2}]}}', b"a=1 b", b"m v=1 x", b"\xff\xfe"])
    if kind == 2:
        return b"x" * rng.choice([1, 1, 1, 300_000, 1_000_000])
    if kind == 3:
        return str(rng.uniform(-1e6, 1e6)).encode()
    if kind == 4:
        return b'{"t": %d, "s": "%s"}' % (rng.randrange(100), rng.choice([b"a", b"\\n", b'\\"']))
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(30))).encode()


def test_fuzz_through_real_broker(mosquitto: Any, tmp_path: Path) -> None:
    rng = random.Random(20240517)
    p = uuid.uuid4().hex[:6]
    cfg = mqtt_config(mosquitto.url, [
        dict(topic=f"{p}/v/{{field}}", measurement="v"),
        dict(topic=f"{p}/j/{{dev}}", format="json", measurement="j"),
        dict(topic=f"{p}/k/{{dev}}", format="kv", measurement="k"),
        dict(topic=f"{p}/lp/#", format="influx"),
        dict(topic=f"{p}/ok/{{dev}}", format="json", measurement="ok", types={"n": "int"}),
    ])
    sink = MemorySink()
    src = MqttSource(cfg, sink, state_dir=str(tmp_path))
    src.start()
    wait_for(lambda: src.connected)
    time.sleep(0.3)
    pub = Publisher(mosquitto.port)
    items: List[Tuple[str, bytes]] = []
    valid = 0
    for i in range(3000):
        items.append((random_topic(rng, p), random_payload(rng)))
        if i % 10 == 0:
            items.append((f"{p}/ok/d{valid % 7}", b'{"n": %d}' % valid))
            valid += 1
    try:
        for start in range(0, len(items), 500):
            pub.send_many(items[start:start + 500])
        expected_ok = {f"n={i}i" for i in range(valid)}

        def ok_lines() -> set:
            return {line.split(" ")[1] for line in sink.snapshot() if line.startswith("ok,")}

        wait_for(lambda: ok_lines() >= expected_ok, timeout=60)

        def accounted() -> int:
            status = src.status()
            return sum(s["messages_received"] for s in status["subscriptions"].values()) \
                + status["messages_unmatched"]

        # The broker only forwards topics that match a subscription filter.
        templates = [TopicTemplate.compile(sub.topic) for sub in cfg.subscriptions]
        delivered = sum(1 for topic, _ in items if any(t.match(topic) is not None
                                                        for t in templates))
        assert delivered > 1000
        wait_for(lambda: accounted() == delivered, timeout=30)
        wait_for(lambda: src.status()["acked"] == delivered, timeout=30)
        status = src.status()
        assert status["connected"] and status["disconnects"] == 0
        assert status["messages_unmatched"] == 0
        assert ok_lines() == expected_ok
        for name, s in status["subscriptions"].items():
            assert s["messages_rejected"] <= s["messages_received"], name
        rejected = sum(s["messages_rejected"] for s in status["subscriptions"].values())
        assert rejected > 500  # the fuzz did exercise the bad-input paths
        assert all("\n" not in line for line in sink.snapshot())
    finally:
        pub.close()
        src.stop()
